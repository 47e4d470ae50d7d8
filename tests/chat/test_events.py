"""The closed set of turn events: every kind survives the cache's record of it."""

from __future__ import annotations

import pytest

from app.chat.events import (
    AgentStep,
    Event,
    Finish,
    FollowUps,
    Reasoning,
    Refusal,
    Remembered,
    Sources,
    Text,
    Timings,
    ToolCallDelta,
    ToolFinished,
    ToolStarted,
    Usage,
    Waiting,
    from_record,
    to_record,
)
from app.errors import GatewayError
from app.tools.registry import ToolOutcome

PASSAGE = {
    "index": 1,
    "type": "document",
    "id": "doc-1-1-0",
    "document_id": "doc-1",
    "name": "guide.pdf",
    "title": "Guide",
    "location": "page 2",
    "page": 2,
    "lines": None,
    "text": "It is 42.",
    "score": 0.032787,
    "similarity": 0.81,
    "path": "/v1/documents/doc-1",
}
TURN: list[Event] = [
    AgentStep("Ada", "start"),
    Sources((PASSAGE,)),
    Reasoning("Thinking."),
    ToolStarted("call_1", "calculator", {"expression": "6*7"}),
    Waiting(("calculator",)),
    ToolFinished("call_1", ToolOutcome("calculator", {"expression": "6*7"}, True, "42", 0.0123)),
    ToolStarted("call_2", "weather", {"place": "Atlantis"}),
    ToolFinished(
        "call_2", ToolOutcome("weather", {"place": "Atlantis"}, False, "Error: no such place", 0.5)
    ),
    Text("It is ", logprobs={"content": [{"token": "It", "logprob": -0.1}]}),
    Text("42."),
    Refusal("No more."),
    ToolCallDelta(0, "call_c", "lookup", ""),
    ToolCallDelta(0, None, None, '{"q": "x"}'),
    Text(" [1]"),
    Finish("tool_calls"),
    Remembered(({"event": "add", "id": "mem-1", "text": "The user's name is Ada."},)),
    Usage(10, 5, 15),
    Timings(12.5, 40.0),
    Sources(({"tool": "wikipedia", "url": "https://example.org/a", "title": "A"},)),
    FollowUps(("Why?", "How?", "When?")),
    AgentStep("Ada", "end", 0.04),
]
"""One event of every kind, in an order a turn could emit them."""


def test_every_kind_is_in_the_fixed_turn() -> None:
    kinds = {type(event) for event in TURN}
    assert kinds == set(Event.__args__)


@pytest.mark.parametrize("event", TURN, ids=lambda e: type(e).__name__)
def test_a_record_gives_the_event_back(event: Event) -> None:
    assert from_record(to_record(event)) == event


@pytest.mark.parametrize(
    "record", [{"kind": "Nope"}, {"kind": "Text"}, {"text": "no kind"}, {"kind": "Text", "x": 1}]
)
def test_a_bad_record_is_an_error(record: dict[str, object]) -> None:
    with pytest.raises(GatewayError):
        from_record(record)
