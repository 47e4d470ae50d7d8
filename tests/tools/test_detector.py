"""The detector picks a tool from the user's message for models without function calling."""

from __future__ import annotations

import pytest

from app.tools.detector import Detected, classification_prompt, detect, parse_classification
from tests.conftest import DEFAULT_TOOLS

ALL = {*DEFAULT_TOOLS, "system_info"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("What's the weather in Paris?", Detected("weather", {"location": "Paris"})),
        ("weather in Paris", Detected("weather", {"location": "Paris"})),
        (
            "Will it be raining in New York tomorrow?",
            Detected("weather", {"location": "New York"}),
        ),
        ("What is 17% of 2400?", Detected("calculator", {"expression": "17% of 2400"})),
        ("17% of 2,400", Detected("calculator", {"expression": "17% of 2400"})),
        ("calculate (2+3)*4", Detected("calculator", {"expression": "(2+3)*4"})),
        ("what is 2^10", Detected("calculator", {"expression": "2^10"})),
        ("sqrt(16)", Detected("calculator", {"expression": "sqrt(16)"})),
        (
            "compute the factorial of 30 in Python",
            Detected("calculator", {"expression": "factorial(30)"}),
        ),
        ("what's the square root of 2?", Detected("calculator", {"expression": "sqrt(2)"})),
        ("What time is it in Tokyo?", Detected("time", {"zone": "Tokyo"})),
        (
            "what's the time in America/New_York right now",
            Detected("time", {"zone": "America/New_York"}),
        ),
        ("What time is it?", Detected("time", {"zone": "UTC"})),
        (
            "What does Wikipedia say about Alan Turing?",
            Detected("wikipedia", {"query": "Alan Turing"}),
        ),
        ("wikipedia: Ada Lovelace", Detected("wikipedia", {"query": "Ada Lovelace"})),
        (
            "search the web for rust async runtimes",
            Detected("web_search", {"query": "rust async runtimes"}),
        ),
        ("latest news about the Mars rover", Detected("web_search", {"query": "the Mars rover"})),
        (
            "Summarize https://example.org/post.html please",
            Detected("fetch_url", {"url": "https://example.org/post.html"}),
        ),
        (
            "Run this:\n```python\nprint(2 + 2)\n```",
            Detected("python", {"code": "print(2 + 2)\n"}),
        ),
        ("show me the cpu usage", Detected("system_info", {})),
    ],
)
def test_patterns(message: str, expected: Detected) -> None:
    assert detect(message, ALL) == expected


@pytest.mark.parametrize(
    "message",
    [
        "Hello there",
        "Tell me a story about a dragon",
        "What is love?",
        "I have 2 cats and 3 dogs",
        "Write a haiku about time",
        "",
        "x" * 3000,
    ],
)
def test_ordinary_messages_run_no_tool(message: str) -> None:
    assert detect(message, ALL) is None


def test_only_enabled_tools_are_detected() -> None:
    assert detect("What's the weather in Paris?", ALL - {"weather"}) is None
    assert detect("show me the cpu usage", ALL - {"system_info"}) is None


def test_classification_round_trip() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather for a place.",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            },
        }
    ]
    prompt = classification_prompt(tools)
    assert "weather: Weather for a place." in prompt
    assert '"location"' in prompt
    reply = 'Sure! {"tool": "weather", "arguments": {"location": "Oslo"}} hope that helps'
    assert parse_classification(reply, {"weather"}) == Detected("weather", {"location": "Oslo"})
    assert parse_classification('{"tool": null}', {"weather"}) is None
    assert parse_classification('{"tool": "rm_rf"}', {"weather"}) is None
    assert parse_classification("no json here", {"weather"}) is None
    assert parse_classification("{broken", {"weather"}) is None
