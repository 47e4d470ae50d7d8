"""POST /v1/chat/completions.

This is the hot path, so it is a plain Starlette endpoint: FastAPI's dependency solving and
response handling would cost more than the rest of the gateway's own work per request. Its
helpers for a turn's headers, billing and a client that leaves serve /v1/responses too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.deps import identity, services
from app.api.responses import JSON, EventStream
from app.api.schemas import ChatCompletionRequest, parse_json, validate
from app.api.wire import openai_chat, sse
from app.chat.engine import Engine
from app.chat.turn import Turn
from app.providers.router import Needs
from app.security.ratelimit import charge

_WATCH_AFTER = 1.0
TASK_HEADER = "x-openwebui-task"
"""OpenWebUI fills it with the task's name when the connection sets `X-OpenWebUI-Task:
{{TASK}}`, and leaves it empty for a user's chat."""
_T = TypeVar("_T")


async def chat_completions(request: Request) -> Response:
    gateway = services(request)
    body = parse_json(await request.body())
    req = validate(ChatCompletionRequest, body)
    needs = Needs(
        tools=bool(req.tools),
        choices=req.n or 1,
        whole=not req.stream,
        custom_tools=any(tool.type == "custom" for tool in req.tools or ()),
    )
    task = request.headers.get(TASK_HEADER, "").strip()
    if req.stream:
        turn = await gateway.engine.chat(body, needs, task=task)
        options = openai_chat.StreamOptions(
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
            # a line in the content would corrupt JSON output and the client's own tool turns
            activity_in_content=gateway.settings.tools.tool_activity_in_content
            and (req.response_format or {}).get("type", "text") == "text"
            and not req.tools,
            status_events=_wants_status(request, gateway.settings.tools.status_events),
        )
        events = openai_chat.stream(turn, options)
        if billed(request, turn):
            events = metered(request, turn, events)
        return EventStream(events, headers={**sse.HEADERS, **turn_headers(turn)})
    turn, completion = await unless_gone(request, _whole(gateway.engine, body, needs, task))
    return JSON(
        completion,
        headers=turn_headers(turn) or None,
        background=BackgroundTask(charge_turn, request, turn) if billed(request, turn) else None,
    )


async def _whole(
    engine: Engine, body: dict[str, Any], needs: Needs, task: str
) -> tuple[Turn, dict[str, Any]]:
    turn = await engine.chat(body, needs, task=task)
    return turn, await openai_chat.completion(turn)


def _wants_status(request: Request, setting: str) -> bool:
    """STATUS_EVENTS: on, off, or auto — to OpenWebUI, known by the `X-OpenWebUI-*` headers it
    sends when it forwards user info or is set up with the task header."""
    if setting != "auto":
        return setting == "on"
    return any(name.startswith(b"x-openwebui-") for name, _ in request.scope["headers"])


def turn_headers(turn: Turn) -> dict[str, str]:
    """`X-Cache` for a cacheable request; `X-Tools-Dropped` when the model could not be sent
    the request's tools."""
    headers: dict[str, str] = {}
    if turn.cache is not None:
        headers["X-Cache"] = turn.cache
    if turn.tools_dropped:
        headers["X-Tools-Dropped"] = (
            f"{turn.tools_dropped} tools not sent: {turn.model} cannot call tools"
        )
    return headers


def billed(request: Request, turn: Turn) -> bool:
    """Whether the turn's tokens count against the key's TPM limit (a cache hit cost the
    upstream none)."""
    return turn.cache != "hit" and identity(request).tpm is not None


async def metered(
    request: Request, turn: Turn, events: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    async for event in events:
        yield event
    await charge_turn(request, turn)


async def charge_turn(request: Request, turn: Turn) -> None:
    """The answer's tokens against the key's TPM limit."""
    if turn.usage is not None:
        await charge(request, turn.usage.prompt_tokens + turn.usage.completion_tokens)


async def unless_gone(request: Request, work: Awaitable[_T]) -> _T:
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
        return await work
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
