"""The Anthropic Messages encoder from fixed events (its bytes for the fixed turn are in the
golden files): blocks, stop reasons, the gateway's tools kept out, errors in-band."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.api.wire import anthropic_messages
from app.api.wire.anthropic_messages import Options
from app.chat.events import (
    Event,
    Finish,
    Reasoning,
    Refusal,
    Text,
    ToolCallDelta,
    ToolFinished,
    ToolStarted,
    Usage,
    Waiting,
)
from app.chat.replay import play
from app.chat.turn import Turn
from app.errors import GatewayError, ProviderUnavailable, UpstreamError
from app.tools.registry import ToolOutcome


def turn(events: list[Event]) -> Turn:
    return Turn("openai/m", play(events), id="chatcmpl-1", created=7)


async def frames(events: list[Event], options: Options | None = None) -> list[tuple[str, Any]]:
    """The stream's events as (name, data) pairs."""
    out = []
    async for frame in anthropic_messages.stream(turn(events), options or Options()):
        head, data = frame.decode().removesuffix("\n\n").split("\n")
        name = head.removeprefix("event: ")
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == name
        out.append((name, payload))
    return out


async def message(events: list[Event], options: Options | None = None) -> dict[str, Any]:
    return await anthropic_messages.message(turn(events), options or Options())


async def test_a_plain_answer_streams_in_anthropics_order() -> None:
    got = await frames([Text("Hi"), Text(" there"), Finish("stop"), Usage(3, 2, 5)])
    assert [name for name, _ in got] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = got[0][1]["message"]
    assert start["id"] == "msg_1"
    assert start["content"] == []
    assert start["usage"]["output_tokens"] == 0
    assert got[1][1]["content_block"] == {"type": "text", "text": ""}
    assert got[3][1]["delta"] == {"type": "text_delta", "text": "Hi"}
    assert got[6][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert got[6][1]["usage"] == {"input_tokens": 3, "output_tokens": 2}


async def test_message_start_carries_the_estimate_and_a_missing_usage_is_zero() -> None:
    got = await frames([Text("Hi"), Finish("stop")], Options(input_tokens=42))
    assert got[0][1]["message"]["usage"]["input_tokens"] == 42
    assert got[-2][1]["usage"] == {"output_tokens": 0}


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("something_else", "end_turn"),
    ],
)
async def test_the_finish_reason_becomes_the_stop_reason(finish: str, reason: str) -> None:
    body = await message([Text("x"), Finish(finish)])
    assert body["stop_reason"] == reason
    assert body["stop_sequence"] is None


async def test_a_call_with_a_stop_finish_is_still_tool_use() -> None:
    body = await message([ToolCallDelta(0, "call_1", "f", "{}"), Finish("stop")])
    assert body["stop_reason"] == "tool_use"


async def test_a_refusal_is_text_and_stops_as_refusal() -> None:
    body = await message([Refusal("I can't."), Finish("stop")])
    assert body["content"] == [{"type": "text", "text": "I can't."}]
    assert body["stop_reason"] == "refusal"


async def test_reasoning_is_shown_only_when_thinking_was_asked_for() -> None:
    events: list[Event] = [Reasoning("Hmm."), Text("Yes."), Finish("stop")]
    assert (await message(events))["content"] == [{"type": "text", "text": "Yes."}]
    shown = await message(events, Options(thinking=True))
    assert shown["content"][0] == {"type": "thinking", "thinking": "Hmm.", "signature": ""}
    names = [(n, d.get("delta", {}).get("type")) for n, d in await frames(events)]
    assert ("content_block_delta", "thinking_delta") not in names


async def test_the_gateways_tools_are_pings_and_never_content() -> None:
    outcome = ToolOutcome("calculator", {"expression": "1+1"}, True, "2", 0.01)
    events: list[Event] = [
        ToolStarted("c1", "calculator", {"expression": "1+1"}),
        Waiting(("calculator",)),
        ToolFinished("c1", outcome),
        Text("It is 2."),
        Finish("stop"),
    ]
    got = await frames(events)
    assert [name for name, _ in got[:3]] == ["message_start", "ping", "ping"]
    assert "calculator" not in json.dumps([data for _, data in got[3:]])
    assert (await message(events))["content"] == [{"type": "text", "text": "It is 2."}]


async def test_parallel_calls_are_tool_use_blocks_with_parsed_input() -> None:
    events: list[Event] = [
        Text("Let me look."),
        ToolCallDelta(0, "call_a", "weather", '{"city":'),
        ToolCallDelta(0, None, None, ' "Paris"}'),
        ToolCallDelta(1, "call_b", "time", ""),
        ToolCallDelta(1, None, None, '{"zone": "UTC"}'),
        Finish("tool_calls"),
    ]
    body = await message(events)
    assert body["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "time", "input": {"zone": "UTC"}},
    ]
    got = await frames(events)
    starts = [d["index"] for n, d in got if n == "content_block_start"]
    stops = [d["index"] for n, d in got if n == "content_block_stop"]
    assert starts == stops == [0, 1, 2]
    deltas = [d["delta"] for n, d in got if n == "content_block_delta"]
    partial = [delta["partial_json"] for delta in deltas if delta["type"] == "input_json_delta"]
    assert partial == ['{"city":', ' "Paris"}', '{"zone": "UTC"}']


async def test_interleaved_call_deltas_reach_their_own_blocks() -> None:
    events: list[Event] = [
        ToolCallDelta(0, "call_a", "f", '{"a":'),
        ToolCallDelta(1, "call_b", "g", '{"b":'),
        ToolCallDelta(0, None, None, " 1}"),
        ToolCallDelta(1, None, None, " 2}"),
        Finish("tool_calls"),
    ]
    inputs = [block["input"] for block in (await message(events))["content"]]
    assert inputs == [{"a": 1}, {"b": 2}]


async def test_a_call_without_arguments_has_an_empty_input() -> None:
    body = await message([ToolCallDelta(0, "call_a", "now", ""), Finish("tool_calls")])
    assert body["content"][0]["input"] == {}


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
async def test_arguments_that_are_not_an_object_fail_the_message(arguments: str) -> None:
    with pytest.raises(UpstreamError, match="'f' are not an object"):
        await message([ToolCallDelta(0, "call_a", "f", arguments), Finish("tool_calls")])


async def _failing(error: Exception) -> AsyncIterator[Event]:
    yield Text("Hal")
    raise error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (UpstreamError("openai", "the stream ended early"), "api_error"),
        (ProviderUnavailable("openai", "circuit open"), "overloaded_error"),
        (RuntimeError("boom"), "api_error"),
    ],
)
async def test_an_error_after_the_first_byte_is_an_error_event_and_the_end(
    error: Exception, kind: str
) -> None:
    out = [f async for f in anthropic_messages.stream(Turn("openai/m", _failing(error)), Options())]
    last = out[-1].decode()
    assert last.startswith("event: error\ndata: ")
    body = json.loads(last.split("data: ", 1)[1])
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    unexpected = "the gateway failed unexpectedly; see its log for details"
    message = error.message if isinstance(error, GatewayError) else unexpected
    assert body["error"]["message"] == message
    assert not any(b"message_stop" in f or b"message_delta" in f for f in out)
