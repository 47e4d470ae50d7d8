"""The OpenAI chat wire: a fixed list of events encoded to exact bytes (streamed) and to one
completion (collected), and upstream chunks read and collected back."""

from __future__ import annotations

import json

from app.api.wire import openai_chat
from tests.chat.test_turn import delta, turn


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
    completion = await openai_chat.completion(t)
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
    completion = await openai_chat.completion(t)
    first, second = completion["choices"]
    assert first["message"]["content"] == "Aa"
    assert first["message"]["reasoning_content"] == "think"
    assert first["logprobs"] == lp
    assert second["message"]["content"] == "B"
    assert second["finish_reason"] == "length"
    assert "reasoning_content" not in second["message"]
