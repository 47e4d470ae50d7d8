"""Each wire's encoder against its golden file, from one fixed list of events; errors in-band."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.api.wire import chat_stream, openai_chat
from app.chat.events import Event, Text
from app.chat.turn import Turn
from app.errors import UpstreamError
from tests.api.wire.golden import HERE, WIRES, fixed_turn


@pytest.mark.parametrize("name", sorted(WIRES))
async def test_the_fixed_turn_encodes_to_the_golden_bytes(name: str) -> None:
    encode: Callable[[Turn], Awaitable[bytes]] = WIRES[name]
    assert await encode(fixed_turn()) == (HERE / name).read_bytes()


async def _cut() -> AsyncIterator[Event]:
    yield Text("Hal")
    raise UpstreamError("openai", "the stream ended before the answer was complete")


async def test_an_error_after_the_first_byte_is_in_band_then_done() -> None:
    turn = Turn("openai/m", _cut(), id="chatcmpl-1", created=7)
    frames = [f async for f in openai_chat.stream(turn, openai_chat.StreamOptions())]
    assert frames[-2].startswith(b'data: {"error":{"message":"openai: the stream ended')
    assert frames[-1] == b"data: [DONE]\n\n"
    assert b'finish_reason":"stop' not in b"".join(frames)


async def test_an_error_on_the_stream_events_wire_is_an_error_event() -> None:
    turn = Turn("openai/m", _cut(), session_id="s1", user_id="alice")
    frames = [f async for f in chat_stream.stream(turn)]
    assert frames[0] == b'event: token\ndata: {"text":"Hal"}\n\n'
    assert frames[-1].startswith(b'event: error\ndata: {"message":"openai: the stream ended')
    assert all(b"event: done" not in f for f in frames)
