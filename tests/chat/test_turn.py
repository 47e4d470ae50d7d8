"""Turn: chunks stamped as the gateway's own, checked for completeness, collected correctly."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from app.chat.turn import Turn
from app.errors import UpstreamError
from app.providers.base import Capabilities, Chunk
from app.providers.router import OpenStream, Route


class Scripted:
    """A provider that plays back fixed chunks (for the Turn only; it is never routed to)."""

    name = "scripted"
    capabilities = Capabilities()


def turn(chunks: list[Chunk], *, include_usage: bool = False) -> Turn:
    async def rest() -> AsyncGenerator[Chunk, None]:
        for chunk in chunks[1:]:
            yield chunk

    route = Route(Scripted(), "m")  # type: ignore[arg-type]
    opened = OpenStream(route, chunks[0], rest())
    return Turn(opened, include_usage=include_usage, total_timeout=60)


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> Chunk:
    return {"choices": [{"index": index, "delta": fields, "finish_reason": finish}]}


async def test_chunks_are_stamped_and_usage_comes_last() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    t = turn(
        [
            delta(content="Hi"),
            delta(content="!"),
            delta(finish="stop"),
            {"choices": [], "usage": usage},
        ],
        include_usage=True,
    )
    chunks = [chunk async for chunk in t.chunks()]
    assert {c["id"] for c in chunks} == {t.id}
    assert {c["model"] for c in chunks} == {"scripted/m"}
    assert chunks[0]["choices"][0]["delta"] == {"content": "Hi", "role": "assistant"}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == usage


async def test_a_stream_without_finish_reason_is_an_error() -> None:
    t = turn([delta(content="Hi"), delta(content=" there")])
    seen: list[Chunk] = []

    async def drain() -> None:
        async for chunk in t.chunks():
            seen.append(chunk)

    with pytest.raises(UpstreamError, match="ended before the answer was complete"):
        await drain()
    assert len(seen) == 2


async def test_collect_merges_parallel_tool_call_fragments() -> None:
    first = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    second = {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": '{"y"'}}
    t = turn(
        [
            delta(role="assistant", content=None, tool_calls=[first]),
            delta(tool_calls=[{"index": 0, "function": {"arguments": '{"x": '}}]),
            delta(tool_calls=[second]),
            delta(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}]),
            delta(tool_calls=[{"index": 1, "function": {"arguments": ": 2}"}}]),
            delta(finish="tool_calls"),
        ]
    )
    completion = await t.collect()
    message = completion["choices"][0]["message"]
    assert message["content"] is None
    calls = message["tool_calls"]
    assert [c["id"] for c in calls] == ["call_a", "call_b"]
    assert [c["type"] for c in calls] == ["function", "function"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1}
    assert json.loads(calls[1]["function"]["arguments"]) == {"y": 2}
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert completion["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


async def test_collect_keeps_choices_reasoning_and_logprobs_apart() -> None:
    lp = {"content": [{"token": "a", "logprob": -0.1}]}
    t = turn(
        [
            delta(0, content="A", reasoning_content="think"),
            delta(1, content="B"),
            {"choices": [{"index": 0, "delta": {"content": "a"}, "logprobs": lp}]},
            delta(0, finish="stop"),
            delta(1, finish="length"),
        ]
    )
    completion = await t.collect()
    first, second = completion["choices"]
    assert first["message"]["content"] == "Aa"
    assert first["message"]["reasoning_content"] == "think"
    assert first["logprobs"] == lp
    assert second["message"]["content"] == "B"
    assert second["finish_reason"] == "length"
    assert "reasoning_content" not in second["message"]
