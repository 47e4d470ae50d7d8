"""JSON responses rendered by orjson, and server-sent events streamed without a detour."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Generator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


_MOST_PER_WRITE = 64


class EventStream(StreamingResponse):
    """A `text/event-stream` answer sent by the request's own task.

    Starlette's `StreamingResponse`, under a server older than ASGI spec 2.4 (uvicorn says 2.3),
    opens an anyio task group, moves the stream into a new task and listens for the client
    leaving in the request's: the headers and the first event then wait for that task to be
    scheduled, about 0.1 ms on the way to the first token (docs/PERFORMANCE.md). Here the
    request's task streams at once, and a plain task beside it only waits for
    `http.disconnect`, then cancels the stream, and the upstream request with it. As with
    Starlette, a client that leaves ends the response quietly and `background` still runs."""

    media_type = "text/event-stream"

    async def stream_response(self, send: Send) -> None:
        """The events, those that are ready at once in few writes, and never an event held back
        while the stream waits: what is pending is sent before each wait. An upstream that
        hands over many chunks in one read (a fast model, a buffering proxy) costs a handful of
        writes, and of wake-ups of the client, rather than one per event. Within such a burst
        the writes grow from one event to twice the last, up to `_MOST_PER_WRITE`, so that the
        first events, the first token among them, leave as early as they would one by one."""
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        events = aiter(self.body_iterator)
        pending: list[bytes | memoryview] = []
        batch = 1
        try:
            while True:
                step = anext(events).__await__()
                try:
                    waiting_on = step.send(None)
                except StopIteration as ready:  # the next event was there already
                    pending.append(self._encoded(ready.value))
                    if len(pending) >= batch:
                        await send(_body(pending, more=True))
                        pending = []
                        batch = min(2 * batch, _MOST_PER_WRITE)
                    continue
                if pending:  # it is not: send what is, then wait for it
                    await send(_body(pending, more=True))
                    pending = []
                pending.append(self._encoded(await _finish(step, waiting_on)))
        except StopAsyncIteration:
            pass
        except Exception:
            if pending:  # what was made before the failure still goes out
                await send(_body(pending, more=True))
            raise
        await send(_body(pending, more=False))

    def _encoded(self, chunk: Any) -> bytes | memoryview:
        return chunk if isinstance(chunk, bytes | memoryview) else str(chunk).encode(self.charset)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        watcher = asyncio.create_task(watch())  # first runs when the stream first waits
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not gone or task.uncancel():  # not (only) the client leaving
                raise
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:  # cancelled outside the iterator: close it here
                await aclose()
        finally:
            watcher.cancel()
        if self.background is not None:
            await self.background()


def _body(pending: list[bytes | memoryview], *, more: bool) -> Message:
    return {"type": "http.response.body", "body": b"".join(pending), "more_body": more}


@types.coroutine
def _finish(step: Generator[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """The rest of `step`, an await begun with `send(None)` that yielded `waiting_on`: what the
    event loop sends or throws in goes on to `step`, as `yield from step` would have done."""
    out = waiting_on
    while True:
        try:
            sent = yield out
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:
            try:
                out = step.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                out = step.send(sent)
            except StopIteration as done:
                return done.value
