"""Line splitting over a real streamed body: lines of any length, split across reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from app.providers.http import iter_lines
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
