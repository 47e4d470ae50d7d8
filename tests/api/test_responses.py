"""EventStream, driven as an ASGI server would drive it: what goes out in which write, and what a
client that leaves does to the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.background import BackgroundTask
from starlette.types import Message

from app.api.responses import EventStream

SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/"}


class Wire:
    """The server side of one request: the body messages sent, and a client that can leave."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.ended = False
        self.left = asyncio.Event()

    async def receive(self) -> Message:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self.bodies.append(message["body"])
            self.ended = not message["more_body"]


async def test_a_burst_goes_out_in_few_writes_the_first_events_at_once() -> None:
    async def events() -> AsyncIterator[bytes]:
        for n in range(10):
            yield b"%d," % n

    wire = Wire()
    await EventStream(events())(SCOPE, wire.receive, wire.send)
    assert wire.bodies == [b"0,", b"1,2,", b"3,4,5,6,", b"7,8,9,"]
    assert wire.ended


async def test_no_event_is_held_back_while_the_stream_waits() -> None:
    wire = Wire()
    more = asyncio.Event()
    sent_before_the_wait: list[bytes] = []

    async def events() -> AsyncIterator[bytes]:
        yield b"data: role\n\n"
        yield b"data: first\n\n"
        await asyncio.sleep(0)  # the same read's events, then the network
        sent_before_the_wait.extend(wire.bodies)
        await more.wait()
        yield b"data: second\n\n"

    stream = asyncio.create_task(EventStream(events())(SCOPE, wire.receive, wire.send))
    await asyncio.sleep(0.01)
    assert wire.bodies == [b"data: role\n\n", b"data: first\n\n"]
    assert sent_before_the_wait == wire.bodies
    more.set()
    await stream
    assert wire.bodies[2:] == [b"data: second\n\n"]
    assert wire.ended


async def test_a_client_that_leaves_ends_the_stream_and_closes_it() -> None:
    wire = Wire()
    closed = asyncio.Event()
    background = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"data: first\n\n"
            await asyncio.Event().wait()  # an upstream that never answers again
            yield b"data: never\n\n"
        finally:
            closed.set()

    response = EventStream(events(), background=BackgroundTask(background.set))
    stream = asyncio.create_task(response(SCOPE, wire.receive, wire.send))
    await asyncio.sleep(0.01)
    assert wire.bodies == [b"data: first\n\n"]
    wire.left.set()
    await asyncio.wait_for(stream, 5)  # returns quietly: no error for a client that is gone
    assert closed.is_set()
    assert background.is_set()
    assert not wire.ended


async def test_a_cancelled_stream_stays_cancelled() -> None:
    wire = Wire()

    async def events() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        await asyncio.Event().wait()
        yield b"data: never\n\n"

    stream = asyncio.create_task(EventStream(events())(SCOPE, wire.receive, wire.send))
    await asyncio.sleep(0.01)
    stream.cancel()  # a server shutting down, not the client leaving
    with pytest.raises(asyncio.CancelledError):
        await stream


async def test_a_failure_sends_what_was_ready_before_it() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        raise RuntimeError("boom")

    wire = Wire()
    with pytest.raises(RuntimeError, match="boom"):
        await EventStream(events())(SCOPE, wire.receive, wire.send)
    assert wire.bodies == [b"data: first\n\n"]
    assert not wire.ended
