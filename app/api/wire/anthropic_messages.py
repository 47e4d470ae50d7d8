"""The Anthropic Messages wire: a turn's events as Anthropic's server-sent events, or collected
into one `message`.

Streamed: `message_start`, then content blocks one at a time, each `content_block_start`,
`content_block_delta`s (`text_delta`, `thinking_delta`, `input_json_delta`) and
`content_block_stop` (a `ping` follows the first start), then `message_delta` with the stop
reason and usage, then `message_stop`. Text and refusals are text blocks, the client's tool calls
`tool_use` blocks, the model's reasoning `thinking` blocks when the request asked for thinking
(else it is not shown). The gateway's own tools show only as `ping`s while they run. An error
after the first byte is an `error` event, and the stream ends there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, assert_never

import orjson

from app.api.wire.sse import mid_answer
from app.chat import events as ev
from app.chat.turn import Turn
from app.errors import UpstreamError
from app.ids import new_id

Json = dict[str, Any]
_PING: Json = {"type": "ping"}
_DELTA_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}


@dataclass(frozen=True, slots=True)
class Options:
    thinking: bool = False
    """Whether the request asked for thinking: the model's reasoning is shown as such."""
    input_tokens: int = 0
    """The prompt's estimated tokens for `message_start`; `message_delta` gives the upstream's."""


async def stream(turn: Turn, options: Options) -> AsyncIterator[bytes]:
    """The turn as Anthropic's event stream."""
    start = {**_head(turn), "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = _usage(options.input_tokens, 0)
    yield _sse({"type": "message_start", "message": start})
    blocks = _Blocks(options.thinking)
    try:
        async for event in turn.events():
            for frame in blocks.frames(event):
                yield _sse(frame)
    except Exception as exc:
        yield _sse(mid_answer(exc, f"stream from {turn.model}").anthropic_body())
        return
    for frame in blocks.close():
        yield _sse(frame)
    usage = {"output_tokens": 0} if turn.usage is None else _delta_usage(turn.usage)
    stop = {"stop_reason": blocks.stop_reason(), "stop_sequence": None}
    yield _sse({"type": "message_delta", "delta": stop, "usage": usage})
    yield _sse({"type": "message_stop"})


async def message(turn: Turn, options: Options) -> Json:
    """The whole turn as one Anthropic `message`."""
    blocks = _Blocks(options.thinking)
    content: list[Json] = []
    pieces: list[list[str]] = []
    async for event in turn.events():
        for frame in blocks.frames(event):
            if frame["type"] == "content_block_start":
                content.append(dict(frame["content_block"]))
                pieces.append([])
            elif frame["type"] == "content_block_delta":
                delta = frame["delta"]
                pieces[frame["index"]].append(delta[_DELTA_FIELDS[delta["type"]]])
    for block, parts in zip(content, pieces, strict=True):
        joined = "".join(parts)
        if block["type"] == "tool_use":
            block["input"] = _input(turn, block["name"], joined)
        else:
            block[block["type"]] = joined
    usage = turn.usage or ev.NO_USAGE
    return {
        **_head(turn),
        "content": content,
        "stop_reason": blocks.stop_reason(),
        "stop_sequence": None,
        "usage": _usage(usage.prompt_tokens, usage.completion_tokens),
    }


class _Blocks:
    """The turn's events as content-block events, one block open at a time, and what the turn's
    stop reason is."""

    def __init__(self, thinking: bool) -> None:
        self._thinking = thinking
        self._open: str | int | None = None
        """The open block: "text", "thinking", or the index of a tool call."""
        self._count = 0
        self._calls: dict[int, int] = {}
        """A tool call's index → its block's."""
        self._finish: str | None = None
        self._refused = False

    def frames(self, event: ev.Event) -> list[Json]:
        match event:
            case ev.Text(text=text):
                return self._into("text", {"type": "text", "text": ""}, "text_delta", text)
            case ev.Refusal(text=text):
                self._refused = True
                return self._into("text", {"type": "text", "text": ""}, "text_delta", text)
            case ev.Reasoning(text=text):
                if not self._thinking:
                    return []
                block = {"type": "thinking", "thinking": "", "signature": ""}
                return self._into("thinking", block, "thinking_delta", text)
            case ev.ToolCallDelta():
                return self._call(event)
            case ev.ToolStarted() | ev.Waiting():
                return [_PING]
            case ev.Finish(reason=reason):
                self._finish = reason
                return []
            case (
                ev.ToolFinished()
                | ev.Sources()
                | ev.Remembered()
                | ev.AgentStep()
                | ev.FollowUps()
                | ev.Usage()
                | ev.Timings()
            ):
                return []
            case _:
                assert_never(event)

    def close(self) -> list[Json]:
        """The open block's end, if one is open."""
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._count - 1}]

    def stop_reason(self) -> str:
        reason = _STOP_REASONS.get(self._finish or "")
        if reason is not None:
            return reason
        if self._calls:
            return "tool_use"
        if self._refused or self._finish == "content_filter":
            return "refusal"
        return "end_turn"

    def _into(self, key: str, block: Json, kind: str, text: str) -> list[Json]:
        frames = [] if self._open == key else self._start(key, block)
        frames.append(_delta(self._count - 1, {"type": kind, _DELTA_FIELDS[kind]: text}))
        return frames

    def _call(self, event: ev.ToolCallDelta) -> list[Json]:
        index = self._calls.get(event.index)
        frames: list[Json] = []
        if index is None:
            block = {
                "type": "tool_use",
                "id": event.id or new_id("toolu_"),
                "name": event.name or "",
                "input": {},
            }
            frames = self._start(event.index, block)
            index = self._calls[event.index] = self._count - 1
        # An upstream that interleaves its calls' deltas gets them at their blocks' indexes.
        if event.arguments:
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            frames.append(_delta(index, delta))
        return frames

    def _start(self, key: str | int, block: Json) -> list[Json]:
        frames = self.close()
        self._open = key
        frames.append({"type": "content_block_start", "index": self._count, "content_block": block})
        if self._count == 0:
            frames.append(_PING)
        self._count += 1
        return frames


def _head(turn: Turn) -> Json:
    return {
        "id": turn.id_as("msg_"),
        "type": "message",
        "role": "assistant",
        "model": turn.model,
    }


def _usage(input_tokens: int, output_tokens: int) -> Json:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _delta_usage(usage: ev.Usage) -> Json:
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def _delta(index: int, delta: Json) -> Json:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _input(turn: Turn, name: str, arguments: str) -> Json:
    """A tool call's arguments as the object Anthropic's `input` is."""
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(turn.model, f"the arguments of its call of '{name}' are not an object")
    return parsed


def _sse(frame: Json) -> bytes:
    name: str = frame["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(frame) + b"\n\n"
