"""Golden files: the exact bytes each wire gives for the fixed turn of `tests/chat/test_events.py`
(`TURN`). Regenerate with `python -m tests.api.wire.golden` after a deliberate change of a wire,
and read the diff before committing it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson

from app.api.wire import (
    anthropic_messages,
    chat_json,
    chat_stream,
    openai_chat,
    openai_completions,
    openai_responses,
)
from app.api.wire.responses_request import decode
from app.chat.events import Event
from app.chat.replay import play
from app.chat.turn import Turn
from tests.chat.test_events import TURN

HERE = Path(__file__).parent / "golden"


def fixed_turn(events: list[Event] = TURN) -> Turn:
    return Turn(
        "openai/m",
        play(events),
        id="chatcmpl-1",
        created=7,
        lists_tools=True,
        session_id="s1",
        user_id="alice",
    )


async def joined(frames: AsyncIterator[bytes]) -> bytes:
    return b"".join([frame async for frame in frames])


async def _json(body: dict[str, object]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


async def openai_stream(turn: Turn) -> bytes:
    options = openai_chat.StreamOptions(include_usage=True, activity_in_content=True)
    return await joined(openai_chat.stream(turn, options))


async def openai_stream_plain(turn: Turn) -> bytes:
    return await joined(openai_chat.stream(turn, openai_chat.StreamOptions()))


async def openai_stream_status(turn: Turn) -> bytes:
    return await joined(openai_chat.stream(turn, openai_chat.StreamOptions(status_events=True)))


async def openai_completion(turn: Turn) -> bytes:
    return await _json(await openai_chat.completion(turn))


async def completions_stream(turn: Turn) -> bytes:
    turn.id = "cmpl-1"  # as Engine.complete names its turns
    return await joined(openai_completions.stream(turn, include_usage=True))


async def completions_stream_plain(turn: Turn) -> bytes:
    turn.id = "cmpl-1"
    return await joined(openai_completions.stream(turn, include_usage=False))


async def completions_body(turn: Turn) -> bytes:
    turn.id = "cmpl-1"
    return await _json(await openai_completions.completion(turn))


async def stream_events(turn: Turn) -> bytes:
    return await joined(chat_stream.stream(turn))


async def chat_body(turn: Turn) -> bytes:
    return await _json(await chat_json.body(turn))


async def anthropic_stream(turn: Turn) -> bytes:
    options = anthropic_messages.Options(thinking=True, input_tokens=9)
    return await joined(anthropic_messages.stream(turn, options))


async def anthropic_stream_plain(turn: Turn) -> bytes:
    return await joined(anthropic_messages.stream(turn, anthropic_messages.Options()))


async def anthropic_message(turn: Turn) -> bytes:
    options = anthropic_messages.Options(thinking=True)
    return await _json(await anthropic_messages.message(turn, options))


def responses_head() -> openai_responses.Head:
    """The echo of a small request, and ids counted from 1."""
    numbers = itertools.count(1)
    echo = decode({"model": "openai/m", "input": "hi", "instructions": "Be brief."}).echo
    return openai_responses.Head(echo, lambda prefix: f"{prefix}{next(numbers)}")


async def responses_stream(turn: Turn) -> bytes:
    return await joined(openai_responses.stream(turn, responses_head()))


async def responses_body(turn: Turn) -> bytes:
    return await _json(await openai_responses.response(turn, responses_head()))


WIRES: dict[str, Callable[[Turn], Awaitable[bytes]]] = {
    "openai_chat.sse": openai_stream,
    "openai_chat_plain.sse": openai_stream_plain,
    "openai_chat_status.sse": openai_stream_status,
    "openai_chat.json": openai_completion,
    "openai_completions.sse": completions_stream,
    "openai_completions_plain.sse": completions_stream_plain,
    "openai_completions.json": completions_body,
    "chat_stream.sse": stream_events,
    "chat.json": chat_body,
    "anthropic_messages.sse": anthropic_stream,
    "anthropic_messages_plain.sse": anthropic_stream_plain,
    "anthropic_messages.json": anthropic_message,
    "openai_responses.sse": responses_stream,
    "openai_responses.json": responses_body,
}


async def _write() -> None:
    for name, encode in WIRES.items():
        (HERE / name).write_bytes(await encode(fixed_turn()))


if __name__ == "__main__":
    asyncio.run(_write())
