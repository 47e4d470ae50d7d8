"""POST /v1/chat/completions.

This is the hot path, so it is a plain Starlette endpoint: FastAPI's dependency solving and
response handling would cost more than the rest of the gateway's own work per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.responses import JSON, EventStream
from app.api.schemas import ChatCompletionRequest, parse_json, validate
from app.chat.service import ChatService
from app.chat.sse import encode
from app.chat.turn import Answer
from app.memory.replay import cache_status
from app.providers.router import Needs
from app.security.ratelimit import charge

_WATCH_AFTER = 1.0
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def chat_completions(request: Request) -> Response:
    chat: ChatService = request.state.chat
    body = parse_json(await request.body())
    req = validate(ChatCompletionRequest, body)
    stream = bool(req.stream)
    turn = await chat.start(
        body,
        stream=stream,
        include_usage=bool(stream and req.stream_options and req.stream_options.include_usage),
        needs=Needs(tools=bool(req.tools), choices=req.n or 1),
    )
    status = cache_status(turn)
    metered = status != "hit" and request.state.identity.tpm is not None
    if stream:
        headers = _SSE_HEADERS if status is None else {**_SSE_HEADERS, "X-Cache": status}
        events = _metered(request, turn) if metered else encode(turn)
        return EventStream(events, headers=headers)
    completion = await _collect_unless_gone(request, turn)
    return JSON(
        completion,
        headers=None if status is None else {"X-Cache": status},
        background=BackgroundTask(_charge, request, turn) if metered else None,
    )


async def _metered(request: Request, turn: Answer) -> AsyncIterator[bytes]:
    async for event in encode(turn):
        yield event
    await _charge(request, turn)


async def _charge(request: Request, turn: Answer) -> None:
    """The answer's tokens against the key's TPM limit (cache hits cost the upstream none)."""
    usage = turn.usage or {}
    await charge(request, (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0))


async def _collect_unless_gone(request: Request, turn: Answer) -> dict[str, Any]:
    """The whole answer; a client that leaves first cancels it, and so the upstream request
    (Starlette does this for streams, not for plain responses). Only answers slower than
    `_WATCH_AFTER` seconds pay for a watcher task."""
    task = asyncio.current_task()
    assert task is not None
    watcher: asyncio.Task[None] | None = None

    def watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(_cancel_when_gone(request, task))

    timer = asyncio.get_running_loop().call_later(_WATCH_AFTER, watch)
    try:
        return await turn.collect()
    except asyncio.CancelledError:
        if watcher is not None and watcher.done() and not watcher.cancelled():
            task.uncancel()
            raise ClientDisconnect() from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def _cancel_when_gone(request: Request, task: asyncio.Task[Any]) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    task.cancel()


routes = [
    Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"])
    for prefix in ("/v1", "")
]
