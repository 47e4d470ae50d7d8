"""A raw completion's turn: prompts answered one after the other, their choices numbered as
OpenAI numbers them, the usage summed; and the chat that asks a provider without raw
completions for one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.chat.completion import as_chat, in_order
from app.chat.events import Event, Finish, Text, Timings, Usage
from app.chat.replay import play
from app.errors import UpstreamError


def answer_of(prompt: str) -> list[Event]:
    return [
        Text(f"{prompt}-0"),
        Text(f"{prompt}-1", choice=1),
        Finish("stop"),
        Finish("length", choice=1),
        Usage(1, 2, 3),
    ]


async def test_later_prompts_are_asked_in_order_when_the_one_before_has_ended() -> None:
    asked: list[str] = []

    async def answer(prompt: str) -> AsyncIterator[Event]:
        asked.append(prompt)
        return play(answer_of(prompt))

    events = in_order(play(answer_of("a")), ["a", "b", "c"], answer, choices=2)
    seen = []
    async for event in events:
        seen.append(event)
        if event == Finish("length", choice=1):
            assert asked == []  # b is not asked for while a is still answering
    assert asked == ["b", "c"]
    assert seen == [
        Text("a-0"),
        Text("a-1", choice=1),
        Finish("stop"),
        Finish("length", choice=1),
        Text("b-0", choice=2),
        Text("b-1", choice=3),
        Finish("stop", choice=2),
        Finish("length", choice=3),
        Text("c-0", choice=4),
        Text("c-1", choice=5),
        Finish("stop", choice=4),
        Finish("length", choice=5),
        Usage(3, 6, 9),
    ]


async def test_without_usage_none_is_made_up_and_other_events_pass() -> None:
    async def answer(prompt: str) -> AsyncIterator[Event]:
        raise AssertionError("one prompt only")

    events = [e async for e in in_order(play([Text("x"), Timings(1, 2)]), ["p"], answer, 1)]
    assert events == [Text("x"), Timings(1, 2)]


async def test_a_later_prompt_that_fails_fails_the_turn() -> None:
    async def answer(prompt: str) -> AsyncIterator[Event]:
        raise UpstreamError("openai", "down")

    events = in_order(play(answer_of("a")), ["a", "b"], answer, 2)
    with pytest.raises(UpstreamError):
        async for _ in events:
            pass


def test_the_chat_of_a_prompt_is_one_user_message_with_the_same_sampling() -> None:
    body = {
        "model": "m",
        "prompt": "Once upon",
        "max_tokens": 16,
        "stop": ["\n"],
        "temperature": 0.2,
        "n": 2,
        "echo": False,
        "suffix": "",
        "best_of": 1,
        "logprobs": None,
        "user": "u",
    }
    assert as_chat(body) == {
        "model": "m",
        "messages": [{"role": "user", "content": "Once upon"}],
        "max_tokens": 16,
        "stop": ["\n"],
        "temperature": 0.2,
        "n": 2,
        "user": "u",
    }
