"""Line splitting over a real streamed body: lines of any length, split across reads; and a
stream read to its end leaves nothing for the event loop to clean up."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from app.providers.base import Capabilities
from app.providers.http import iter_lines
from app.providers.openai_compat import OpenAICompatProvider
from tests.fakes.serve import serve

BIG = b"x" * (1024 * 1024)


async def _lines(_: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"a": 1}\n{"b":'
        yield b" 2}\n"
        for start in range(0, len(BIG), 100_000):
            yield BIG[start : start + 100_000]
        yield b"\nlast line without newline"

    return StreamingResponse(body())


async def test_lines_are_rebuilt_whatever_the_reads_and_their_length() -> None:
    app = Starlette(routes=[Route("/", _lines)])
    with serve(app) as url:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            lines = [line async for line in iter_lines(resp.content)]
    assert lines == [b'{"a": 1}', b'{"b": 2}', BIG, b"last line without newline"]


async def _sse(_: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"delta": {"role": "assistant", "content": "Hi"}}]}\n\n'
        yield b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'

    return StreamingResponse(body(), media_type="text/event-stream")


async def test_a_stream_left_at_done_leaves_no_generator_for_the_loop_to_close() -> None:
    """An async generator dropped unfinished is closed by the loop's finaliser hook, through
    `call_soon_threadsafe`: a write to the loop's wake-up fd, one more loop turn and a task, for
    every stream."""
    firstiter, finalizer = sys.get_asyncgen_hooks()
    finalised: list[str] = []

    def record(agen: Any) -> None:
        finalised.append(agen.__qualname__)
        if finalizer is not None:
            finalizer(agen)

    app = Starlette(routes=[Route("/v1/chat/completions", _sse, methods=["POST"])])
    with serve(app) as url:
        async with aiohttp.ClientSession() as session:
            provider = OpenAICompatProvider(
                "openai",
                f"{url}/v1",
                "",
                session,
                connect_timeout=5,
                request_timeout=5,
                capabilities=Capabilities(),
            )
            sys.set_asyncgen_hooks(firstiter, record)
            try:
                chunks = [chunk async for chunk in provider.stream_chat("m", {"messages": []})]
            finally:
                sys.set_asyncgen_hooks(firstiter, finalizer)
    assert [c["choices"][0].get("finish_reason") for c in chunks] == [None, "stop"]
    assert finalised == []
