"""The Anthropic Messages API: POST /v1/messages and /v1/messages/count_tokens, over every
model the gateway routes to, through the same turn as /v1/chat/completions.

Keys come as `x-api-key` or `Authorization: Bearer`; `anthropic-version` and `anthropic-beta`
are accepted and ignored. Errors on these paths are in Anthropic's shape (`app.errors`)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.answer import streamed, whole
from app.api.deps import ServicesDep, asker
from app.api.openapi import errors, ref, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json, validate
from app.api.wire import anthropic_messages
from app.api.wire.anthropic_request import (
    MessagesRequest,
    TokenCountRequest,
    conversation,
    decode,
)
from app.chat.context import counter_for
from app.chat.engine import Engine
from app.chat.grounding import Asker
from app.chat.turn import Turn
from app.providers.router import Needs

router = APIRouter()


@router.post(
    "/v1/messages",
    responses=errors(400, 404, 502, 504),
    openapi_extra=request_body(ref(MessagesRequest)),
)
async def messages(request: Request, gateway: ServicesDep) -> Response:
    """A Messages API request answered by any of the gateway's models: one `message`, or with
    `stream: true` Anthropic's server-sent events."""
    decoded = decode(validate(MessagesRequest, parse_json(await request.body())))
    body = decoded.body
    needs = Needs(tools=bool(body.get("tools")), choices=1, whole=not decoded.stream)
    grounded = asker(request, body)
    if decoded.stream:
        turn = await gateway.engine.chat(body, needs, asker=grounded)
        options = anthropic_messages.Options(
            thinking=decoded.thinking, input_tokens=_input_tokens(gateway.engine, body, turn.model)
        )
        return streamed(request, turn, anthropic_messages.stream(turn, options), grounded.owner)
    options = anthropic_messages.Options(thinking=decoded.thinking)
    work = _whole(gateway.engine, body, needs, options, grounded)
    return await whole(request, work, grounded.owner)


@router.post(
    "/v1/messages/count_tokens",
    responses=errors(400, 404),
    openapi_extra=request_body(ref(TokenCountRequest)),
)
async def count_tokens(request: Request, gateway: ServicesDep) -> Response:
    """`{input_tokens}`: the prompt of a Messages request (without `max_tokens`) as the model
    would be sent it, persona included, counted as the gateway counts context (its tokenizer
    for `openai/*` models, else an estimate)."""
    body = conversation(validate(TokenCountRequest, parse_json(await request.body())))
    route = await gateway.router.resolve(body["model"])
    return JSON({"input_tokens": _input_tokens(gateway.engine, body, route.id)})


async def _whole(
    engine: Engine,
    body: dict[str, Any],
    needs: Needs,
    options: anthropic_messages.Options,
    grounded: Asker,
) -> tuple[Turn, dict[str, Any]]:
    turn = await engine.chat(body, needs, asker=grounded)
    return turn, await anthropic_messages.message(turn, options)


def _input_tokens(engine: Engine, body: dict[str, Any], model_id: str) -> int:
    """The tokens of `body`'s prompt for `model_id`: its messages with the persona applied, the
    calls in them and the tools offered."""
    counter = counter_for(model_id)
    messages: list[dict[str, Any]] = engine.persona.apply(body["messages"])
    calls = [call["function"] for m in messages for call in m.get("tool_calls") or ()]
    tokens = counter.prompt(messages)
    tokens += sum(counter.count(call["name"] + call["arguments"]) for call in calls)
    if body.get("tools"):
        tokens += counter.count(orjson.dumps(body["tools"]).decode())
    return tokens
