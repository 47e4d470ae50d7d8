"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from app.api.deps import ChatDep
from app.api.responses import JSON
from app.api.schemas import ChatCompletionRequest, parse_json, validate
from app.chat.sse import encode
from app.providers.router import Needs

router = APIRouter()

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/chat/completions")
async def chat_completions(request: Request, chat: ChatDep) -> Response:
    body = parse_json(await request.body())
    req = validate(ChatCompletionRequest, body)
    stream = bool(req.stream)
    turn = await chat.start(
        body,
        include_usage=bool(stream and req.stream_options and req.stream_options.include_usage),
        needs=Needs(tools=bool(req.tools), choices=req.n or 1),
    )
    if stream:
        return StreamingResponse(encode(turn), media_type="text/event-stream", headers=_SSE_HEADERS)
    return JSON(await turn.collect())
