"""JSON responses rendered by orjson, and server-sent events streamed without a detour."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


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
