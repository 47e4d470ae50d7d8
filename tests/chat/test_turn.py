"""Reading an upstream answer as events: text, tool-call deltas and finishes as they come, usage
last, and an answer that stops early is an error."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from app.chat.events import Event, Finish, Reasoning, Text, ToolCallDelta, Usage
from app.chat.turn import Turn, read
from app.errors import UpstreamError, UpstreamTimeout
from app.providers.base import Capabilities, Chunk
from app.providers.router import OpenStream, Route


class Scripted:
    """A provider that plays back fixed chunks (for reading only; it is never routed to)."""

    name = "scripted"
    capabilities = Capabilities()


def opened(chunks: list[Chunk]) -> OpenStream:
    async def rest() -> AsyncGenerator[Chunk, None]:
        for chunk in chunks[1:]:
            yield chunk

    route = Route(Scripted(), "m")  # type: ignore[arg-type]
    return OpenStream(route, chunks[0], rest())


def turn(chunks: list[Chunk], total_timeout: float = 60) -> Turn:
    deadline = time.monotonic() + total_timeout
    return Turn("scripted/m", read(opened(chunks), deadline, total_timeout))


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> Chunk:
    return {"choices": [{"index": index, "delta": fields, "finish_reason": finish}]}


async def events_of(t: Turn) -> list[Event]:
    return [event async for event in t.events()]


async def test_text_finish_and_usage_last() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    t = turn(
        [
            delta(role="assistant", content=""),
            delta(content="Hi"),
            delta(content="!"),
            delta(finish="stop"),
            {"choices": [], "usage": usage},
        ]
    )
    assert await events_of(t) == [Text("Hi"), Text("!"), Finish("stop"), Usage(3, 2, 5)]
    assert t.usage == Usage(3, 2, 5)


async def test_a_stream_without_finish_reason_is_an_error() -> None:
    t = turn([delta(content="Hi"), delta(content=" there")])
    seen: list[Event] = []

    async def drain() -> None:
        async for event in t.events():
            seen.append(event)

    with pytest.raises(UpstreamError, match="ended before the answer was complete"):
        await drain()
    assert seen == [Text("Hi"), Text(" there")]


async def test_an_answer_past_total_timeout_is_an_error() -> None:
    t = turn([delta(content="Hi"), delta(finish="stop")], total_timeout=-1)
    with pytest.raises(UpstreamTimeout, match="TOTAL_TIMEOUT"):
        await events_of(t)


async def test_tool_call_fragments_keep_their_index_and_choice() -> None:
    t = turn(
        [
            delta(tool_calls=[{"index": 1, "id": "c", "function": {"name": "f"}}]),
            delta(1, tool_calls=[{"function": {"arguments": "{}"}}], finish="tool_calls"),
        ]
    )
    assert await events_of(t) == [
        ToolCallDelta(1, "c", "f", ""),
        ToolCallDelta(0, None, None, "{}", 1),
        Finish("tool_calls", 1),
    ]


async def test_reasoning_under_either_name() -> None:
    t = turn(
        [
            delta(reasoning_content="a"),
            delta(reasoning="b"),
            delta(finish="stop"),
        ]
    )
    assert await events_of(t) == [Reasoning("a"), Reasoning("b"), Finish("stop")]
