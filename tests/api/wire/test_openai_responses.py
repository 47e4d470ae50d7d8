"""The Responses encoder from fixed events: the stream's event order and numbering, the response
object, incomplete and failed answers, and the gateway's own tools kept out of the output."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from app.api.wire import openai_responses
from app.api.wire.responses_request import decode
from app.chat.events import (
    Event,
    Finish,
    Reasoning,
    Refusal,
    Sources,
    Text,
    ToolCallDelta,
    ToolFinished,
    ToolStarted,
    Usage,
    Waiting,
)
from app.chat.replay import play
from app.chat.turn import Turn
from app.errors import UpstreamError
from app.tools.registry import ToolOutcome
from tests.api.wire.golden import fixed_turn, responses_head

ECHO = decode({"model": "openai/m", "input": "hi", "instructions": "Be brief."}).echo


def counted() -> Callable[[str], str]:
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix}{next(numbers)}"


def head() -> openai_responses.Head:
    return openai_responses.Head(ECHO, counted())


def fixed(events: list[Event] | AsyncIterator[Event]) -> Turn:
    source = play(events) if isinstance(events, list) else events
    return Turn("openai/m", source, id="chatcmpl-1", created=7)


async def streamed(
    events: list[Event] | AsyncIterator[Event], keep: openai_responses.Keep | None = None
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The stream's frames, and its events (JSON) in order."""
    frames = [f async for f in openai_responses.stream(fixed(events), head(), keep)]
    parsed = []
    for frame in frames:
        if frame.startswith(b":"):
            continue
        name, data = frame.decode().removesuffix("\n\n").split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        parsed.append(event)
    return frames, parsed


EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


async def test_every_event_and_the_response_are_valid_for_the_openai_sdk() -> None:
    """Strictly validated, not merely constructed as the SDK does: a turn of every event kind."""
    frames = [f async for f in openai_responses.stream(fixed_turn(), responses_head())]
    kinds = []
    for frame in frames:
        if not frame.startswith(b":"):
            data = json.loads(frame.split(b"\ndata: ", 1)[1])
            kinds.append(EVENTS.validate_python(data).type)
    assert kinds[-1] == "response.completed"
    whole = await openai_responses.response(fixed_turn(), responses_head())
    parsed = Response.model_validate(whole)
    assert parsed.output_text == "It is 42. [1]"
    message = parsed.output[1]
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text"
    assert text.logprobs is not None
    assert text.logprobs[0].bytes == list(b"It")


TEXT: list[Event] = [Text("Hel"), Text("lo"), Finish("stop"), Usage(3, 2, 5)]


async def test_text_streams_in_openais_order_with_numbered_events() -> None:
    _, events = await streamed(TEXT)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    created = events[0]["response"]
    assert created["status"] == "in_progress"
    assert created["output"] == []
    assert created["usage"] is None
    assert events[2]["item"] == {
        "id": "msg_1",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert [e["delta"] for e in events[4:6]] == ["Hel", "lo"]
    assert events[6]["text"] == "Hello"
    assert all(e["item_id"] == "msg_1" for e in events[3:8])
    final = events[-1]["response"]
    assert final["id"] == created["id"] == "resp_1"
    assert final["status"] == "completed"
    assert final["output"] == [
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
            ],
        }
    ]
    assert final["usage"] == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 5,
    }
    assert final["instructions"] == "Be brief."
    assert final["model"] == "openai/m"
    assert final["created_at"] == 7


async def test_the_whole_response_is_the_streams_last() -> None:
    _, events = await streamed(TEXT)
    whole = await openai_responses.response(fixed(TEXT), head())
    assert whole == events[-1]["response"]


async def test_a_cut_answer_is_incomplete() -> None:
    _, events = await streamed([Text("Hel"), Finish("length"), Usage(3, 1, 4)])
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    whole = await openai_responses.response(fixed([Text("Hel"), Finish("length")]), head())
    assert whole["status"] == "incomplete"


async def test_text_then_tool_calls_are_a_message_then_function_calls() -> None:
    events: list[Event] = [
        Text("Looking."),
        ToolCallDelta(0, "call_a", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city":'),
        ToolCallDelta(1, "call_b", "get_time", "{}"),
        ToolCallDelta(0, None, None, '"Paris"}'),
        Finish("tool_calls"),
    ]
    _, out = await streamed(events)
    assert [e["type"] for e in out[2:-1]] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert out[8]["item"] == {
        "id": "fc_2",
        "type": "function_call",
        "status": "in_progress",
        "arguments": "",
        "call_id": "call_a",
        "name": "get_weather",
    }
    assert [(e["output_index"], e["delta"]) for e in out if "arguments.delta" in e["type"]] == [
        (1, '{"city":'),
        (2, "{}"),
        (1, '"Paris"}'),
    ]
    final = out[-1]["response"]
    assert final["status"] == "completed"
    calls = final["output"][1:]
    assert [(c["call_id"], c["name"], c["arguments"]) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", "{}"),
    ]
    assert {c["status"] for c in calls} == {"completed"}


async def test_reasoning_and_refusal_have_their_own_item_and_part() -> None:
    events: list[Event] = [
        Reasoning("Hmm"),
        Reasoning("."),
        Text("No"),
        Refusal("I won't."),
        Finish("stop"),
    ]
    _, out = await streamed(events)
    kinds = [e["type"] for e in out[2:-1]]
    assert kinds == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    reasoning, message = out[-1]["response"]["output"]
    assert reasoning == {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "Hmm."}],
    }
    assert message["content"] == [
        {"type": "output_text", "text": "No", "annotations": [], "logprobs": []},
        {"type": "refusal", "refusal": "I won't."},
    ]


async def test_the_gateways_own_tools_are_comments_only() -> None:
    outcome = ToolOutcome("calculator", {"expression": "6*7"}, True, "42", 0.01)
    events: list[Event] = [
        ToolStarted("call_1", "calculator", {"expression": "6*7"}),
        Waiting(("calculator",)),
        ToolFinished("call_1", outcome),
        Sources(({"tool": "calculator", "source": "math"},)),
        Text("42"),
        Finish("stop"),
    ]
    frames, out = await streamed(events)
    assert frames[2:4] == [b": running calculator\n\n", b": still running calculator\n\n"]
    assert [item["type"] for item in out[-1]["response"]["output"]] == ["message"]
    assert out[-1]["response"]["output"][0]["content"][0]["text"] == "42"


async def _cut() -> AsyncIterator[Event]:
    yield Text("Hal")
    raise UpstreamError("openai", "the stream ended before the answer was complete")


async def test_a_failure_after_the_first_byte_is_response_failed() -> None:
    kept: list[dict[str, Any]] = []

    async def keep(response: dict[str, Any]) -> None:
        kept.append(response)

    _, out = await streamed(_cut(), keep)
    assert out[-1]["type"] == "response.failed"
    assert all(e["type"] != "response.completed" for e in out)
    failed = out[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "server_error",
        "message": "openai: the stream ended before the answer was complete",
    }
    assert failed["output"][0]["content"][0]["text"] == "Hal"
    assert failed["output"][0]["status"] == "incomplete"
    assert kept == []


async def test_keep_gets_the_final_response_before_it_is_sent() -> None:
    seen: list[int] = []
    frames_so_far: list[bytes] = []

    async def keep(response: dict[str, Any]) -> None:
        seen.append(len(frames_so_far))
        assert response["status"] == "completed"

    async for frame in openai_responses.stream(fixed(TEXT), head(), keep):
        frames_so_far.append(frame)
    assert seen == [len(frames_so_far) - 1]


async def test_a_custom_tool_call_is_a_custom_tool_call_item() -> None:
    events: list[Event] = [
        ToolCallDelta(0, "call_p", "python", "", custom=True),
        ToolCallDelta(0, None, None, "print(", custom=True),
        ToolCallDelta(0, None, None, "'hi')", custom=True),
        Finish("tool_calls"),
    ]
    _, out = await streamed(events)
    assert [e["type"] for e in out[2:-1]] == [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
    ]
    assert [e["delta"] for e in out[3:5]] == ["print(", "'hi')"]
    assert out[5]["input"] == "print('hi')"
    assert "name" not in out[5]
    for event in out:
        EVENTS.validate_python(event)
    [call] = out[-1]["response"]["output"]
    assert call == {
        "id": "ctc_1",
        "type": "custom_tool_call",
        "input": "print('hi')",
        "call_id": "call_p",
        "name": "python",
    }
