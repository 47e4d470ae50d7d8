"""How an entry point sends a turn: streamed, as server-sent events billed when they end, or
whole, cancelled when the client leaves first and billed after it is sent. Every wire's route
answers through these two, and so each answer is recorded here for its ratings
(`api/feedback.py`): what produced it and whose it is, queued when the turn's events end and written
by the recorder's task (`state/feedback.Recorder`), so that neither the answer nor its last bytes
wait for Redis, and a Redis failure costs the answer nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request

from app.api.deps import identity, services
from app.api.responses import JSON, EventStream
from app.api.wire import sse
from app.chat.turn import Turn
from app.security.ratelimit import charge
from app.state.feedback import Answer

_WATCH_AFTER = 1.0
_T = TypeVar("_T")


def streamed(request: Request, turn: Turn, events: AsyncIterator[bytes], owner: str) -> EventStream:
    """`events`, the turn in a wire's frames, as the response; `owner` is whose answer it is
    (`deps.answer_owner`)."""
    if _billed(request, turn):
        events = _metered(request, turn, events)
    turn.ended = _recorder(request, owner)
    return EventStream(events, headers={**sse.HEADERS, **_headers(turn)})


async def whole(request: Request, work: Awaitable[tuple[Turn, dict[str, Any]]], owner: str) -> JSON:
    """The answer `work` makes, a turn and its body, as the response; `owner` is whose answer
    it is (`deps.answer_owner`)."""
    turn, body = await _unless_gone(request, work)
    _recorder(request, owner)(turn)
    return JSON(
        body,
        headers=_headers(turn) or None,
        background=BackgroundTask(_charge, request, turn) if _billed(request, turn) else None,
    )


def _headers(turn: Turn) -> dict[str, str]:
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


def _billed(request: Request, turn: Turn) -> bool:
    """Whether the turn's tokens count against the key's TPM limit (a cache hit cost the
    upstream none)."""
    return turn.cache != "hit" and identity(request).tpm is not None


async def _metered(
    request: Request, turn: Turn, events: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    async for event in events:
        yield event
    await _charge(request, turn)


async def _charge(request: Request, turn: Turn) -> None:
    """The answer's tokens against the key's TPM limit."""
    if turn.usage is not None:
        await charge(request, turn.usage.prompt_tokens + turn.usage.completion_tokens)


def _recorder(request: Request, owner: str) -> Callable[[Turn], None]:
    """What records an ended turn's answer under its id: its model, pipeline and the gateway's
    tools that ran, and `owner`."""
    recorder = services(request).recorder

    def record(turn: Turn) -> None:
        recorder.add(turn.id, Answer.of(turn.model, turn.tools_run, owner))

    return record


async def _unless_gone(request: Request, work: Awaitable[_T]) -> _T:
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
