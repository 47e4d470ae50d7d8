"""A raw completion's turn (`/v1/completions`): each prompt continued as it is, natively where
the provider completes prompts, else asked as the one user message of a chat; no persona, no
tools. The prompts are answered one after the other, and their choices numbered as OpenAI numbers
them: prompt p's choice c is choice p * n + c."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from app.chat.events import (
    Event,
    Finish,
    Reasoning,
    Refusal,
    Text,
    ToolCallDelta,
    Usage,
)

_NOT_CHAT = frozenset({"prompt", "echo", "suffix", "best_of", "logprobs"})
"""Completions fields a chat request does not have."""

Answer = Callable[[str], Awaitable[AsyncIterator[Event]]]
"""The events of one prompt's answer, once it has begun."""


def as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat request that asks for the completion of `body` (a completions request of one
    prompt): the prompt as the one user message, the sampling as it is."""
    chat = {k: v for k, v in body.items() if k not in _NOT_CHAT}
    chat["messages"] = [{"role": "user", "content": body["prompt"]}]
    return chat


async def in_order(
    first: AsyncIterator[Event], prompts: Sequence[str], answer: Answer, choices: int
) -> AsyncIterator[Event]:
    """The events of `first` (the answer to `prompts[0]`), then those of the answer to each
    later prompt, asked for when the one before has ended, its choices numbered on; the usage
    summed over all, last."""
    usage: Usage | None = None
    for position, prompt in enumerate(prompts):
        events = first if position == 0 else await answer(prompt)
        offset = position * choices
        async for event in events:
            match event:
                case Usage():
                    usage = event if usage is None else usage + event
                case Text() | Reasoning() | Refusal() | ToolCallDelta() | Finish() if offset:
                    yield replace(event, choice=event.choice + offset)
                case _:
                    yield event
    if usage is not None:
        yield usage
