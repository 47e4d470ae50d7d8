"""POST /v1/completions: OpenAI's legacy text completions, for the clients that still use them
(`client.completions.create`, LangChain's `OpenAI` LLM, code-completion plugins)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response

from app.api.chat import unless_gone
from app.api.deps import ServicesDep
from app.api.openapi import errors, request_body
from app.api.responses import JSON, EventStream
from app.api.schemas import CompletionRequest, parse_json
from app.api.wire import openai_completions, sse
from app.chat.engine import Engine
from app.chat.turn import Turn
from app.security.ratelimit import charge

router = APIRouter()


@router.post(
    "/completions",
    responses={
        "200": {
            "description": "A text_completion, or with stream=true server-sent text_completion "
            "events ending in `data: [DONE]`",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        **errors(400, 404, 502, 504),
    },
    openapi_extra=request_body(CompletionRequest),
)
async def completions(request: Request, gateway: ServicesDep) -> Response:
    """Complete a prompt, or each of a list of prompts (one choice per prompt, in order), as it
    is: natively where the provider completes prompts, else asked as a chat. `echo`, `suffix`,
    `logprobs`, `best_of` above 1 and token-id prompts are refused with a 400."""
    req = openai_completions.decode(parse_json(await request.body()))
    if req.stream:
        turn = await gateway.engine.complete(req.body, req.needs)
        events = _charged(request, turn, openai_completions.stream(turn, req.include_usage))
        return EventStream(events, headers=sse.HEADERS)
    turn, completion = await unless_gone(request, _whole(gateway.engine, req))
    return JSON(completion, background=BackgroundTask(_charge, request, turn))


async def _whole(engine: Engine, req: openai_completions.Request) -> tuple[Turn, dict[str, Any]]:
    turn = await engine.complete(req.body, req.needs)
    return turn, await openai_completions.completion(turn)


async def _charged(
    request: Request, turn: Turn, events: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    async for event in events:
        yield event
    await _charge(request, turn)


async def _charge(request: Request, turn: Turn) -> None:
    """The answer's tokens against the key's TPM limit (nothing for a key without one)."""
    if turn.usage is not None:
        await charge(request, turn.usage.prompt_tokens + turn.usage.completion_tokens)
