"""POST /v1/completions: OpenAI's legacy text completions, for the clients that still use them
(`client.completions.create`, LangChain's `OpenAI` LLM, code-completion plugins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.answer import streamed, whole
from app.api.deps import ServicesDep, answer_owner
from app.api.openapi import errors, request_body
from app.api.schemas import CompletionRequest, parse_json
from app.api.wire import openai_completions
from app.chat.engine import Engine
from app.chat.turn import Turn

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
    owner = answer_owner(request, req.body)
    if req.stream:
        turn = await gateway.engine.complete(req.body, req.needs)
        return streamed(request, turn, openai_completions.stream(turn, req.include_usage), owner)
    return await whole(request, _whole(gateway.engine, req), owner)


async def _whole(engine: Engine, req: openai_completions.Request) -> tuple[Turn, dict[str, Any]]:
    turn = await engine.complete(req.body, req.needs)
    return turn, await openai_completions.completion(turn)
