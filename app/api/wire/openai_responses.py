"""OpenAI's Responses wire: a turn's events as one `response` object, or as its server-sent
events (`event: <type>` and `data: <json>` with a `sequence_number`).

Streamed, in OpenAI's order: `response.created` and `response.in_progress`; per output item
`response.output_item.added`, its parts (`response.content_part.added`, the deltas of
`output_text`, `refusal` or `reasoning_text`, their `.done`, `response.content_part.done`) or a
tool call's `response.function_call_arguments.delta`s (`response.custom_tool_call_input.delta`s
for a custom tool) and `.done`, then
`response.output_item.done`; last `response.completed`, or `response.incomplete` when the answer
was cut at `max_output_tokens`. A failure after the first byte is a `response.failed` event
(status `failed`, `error: {code, message}`), never a silently cut stream. The gateway's own tools
show only as SSE comments (`: running <name>`, `: still running …`).

Output items: the answer's text and refusals as one `message` (a part per run of each), the
model's reasoning as a `reasoning` item, each of the client's tool calls as a `function_call`
(or a `custom_tool_call`). The passages the turn was grounded in that the text cites by their
`[n]` are its `url_citation` annotations (with `response.output_text.annotation.added` events).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, assert_never

import orjson

from app.api.wire.openai_chat import citations
from app.api.wire.sse import comment, mid_answer
from app.chat import events as ev
from app.chat.turn import Turn
from app.errors import GatewayError
from app.ids import new_id

Frame = dict[str, Any] | bytes
"""A stream event to number and send, or an SSE comment as it goes out."""
Keep = Callable[[dict[str, Any]], Awaitable[None]]
ItemStatus = Literal["completed", "incomplete"]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Finish reasons that make a response incomplete, and the reason it then gives."""


@dataclass(frozen=True, slots=True)
class Head:
    """What a response says besides the turn's output: the request's fields it repeats, and
    where its items' ids come from (the response's own is its turn's, as `resp_…`)."""

    echo: dict[str, Any]
    ids: Callable[[str], str] = new_id
    base_url: str = ""
    """Where the gateway is, for the passages' document URLs."""


async def response(turn: Turn, head: Head) -> dict[str, Any]:
    """The whole turn as one `response` object."""
    response_id = turn.id_as("resp_")
    output = _Output(head.ids, head.base_url)
    async for event in turn.events():
        output.feed(event)
    status, details = _outcome(output.finish)
    output.close("incomplete" if details else "completed")
    return _response(turn, head, response_id, status, output.items, details)


async def stream(turn: Turn, head: Head, keep: Keep | None = None) -> AsyncIterator[bytes]:
    """The turn as Responses server-sent events; `keep` is given the final response before the
    last event goes out (so that the response can be continued as soon as it is seen)."""
    response_id = turn.id_as("resp_")
    numbers = itertools.count()

    def frame(data: dict[str, Any]) -> bytes:
        data["sequence_number"] = next(numbers)
        kind: str = data["type"]
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    output = _Output(head.ids, head.base_url)
    started = _response(turn, head, response_id, "in_progress", [], None)
    started["usage"] = None
    yield frame({"type": "response.created", "response": started})
    yield frame({"type": "response.in_progress", "response": started})
    try:
        async for event in turn.events():
            for piece in output.feed(event):
                yield piece if isinstance(piece, bytes) else frame(piece)
        status, details = _outcome(output.finish)
        for piece in output.close("incomplete" if details else "completed"):
            yield piece if isinstance(piece, bytes) else frame(piece)
        final = _response(turn, head, response_id, status, output.items, details)
        if keep is not None:
            await keep(final)
    except Exception as exc:
        error = mid_answer(exc, f"stream from {turn.model}")
        yield frame(_failed(turn, head, response_id, output, error))
    else:
        yield frame({"type": f"response.{status}", "response": final})


def _outcome(finish: str) -> tuple[Literal["completed", "incomplete"], dict[str, str] | None]:
    reason = _INCOMPLETE.get(finish)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def _failed(
    turn: Turn, head: Head, response_id: str, output: _Output, exc: GatewayError
) -> dict[str, Any]:
    output.close("incomplete")
    failed = _response(turn, head, response_id, "failed", output.items, None)
    code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
    failed["error"] = {"code": code, "message": exc.message}
    return {"type": "response.failed", "response": failed}


def _response(
    turn: Turn,
    head: Head,
    response_id: str,
    status: str,
    output: list[dict[str, Any]],
    details: dict[str, str] | None,
) -> dict[str, Any]:
    usage = turn.usage or ev.NO_USAGE
    return {
        "id": response_id,
        "object": "response",
        "created_at": turn.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": details,
        "model": turn.model,
        "output": output,
        **head.echo,
        "usage": {
            "input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens,
        },
    }


class _Output:
    """The response's output items as the turn's events make them, and the stream events that
    say each step. Text and refusals go to the open message (a reasoning item or a tool call
    closes it), reasoning to the open reasoning item, each tool call (by its index) to its own
    item; `close` ends whatever is open."""

    def __init__(self, ids: Callable[[str], str], base_url: str) -> None:
        self.items: list[dict[str, Any]] = []
        self._base_url = base_url
        self._cited: tuple[dict[str, Any], ...] = ()
        """The passages the turn was grounded in, cited as `url_citation` annotations."""
        self.finish = "stop"
        self._ids = ids
        self._message: int | None = None
        self._reasoning: int | None = None
        self._pieces: list[str] = []
        """The text of the open message part, or of the open reasoning."""
        self._calls: dict[int, tuple[int, list[str]]] = {}
        """Each open call's index in the turn: its output index, its arguments so far."""

    def feed(self, event: ev.Event) -> list[Frame]:
        match event:
            case ev.Text(text=text, logprobs=logprobs):
                return self._say("output_text", text, _logprobs(logprobs))
            case ev.Refusal(text=text):
                return self._say("refusal", text, [])
            case ev.Reasoning(text=text):
                return self._think(text)
            case ev.ToolCallDelta():
                return self._call(event)
            case ev.Finish(reason=reason):
                self.finish = reason
                return []
            case ev.Sources(items=items):
                self._cited += items
                return []
            case ev.ToolStarted(name=name):
                return [comment(f"running {name}")]
            case ev.Waiting(names=names):
                return [comment("still running " + ", ".join(names))]
            case (
                ev.Usage()
                | ev.ToolFinished()
                | ev.Remembered()
                | ev.AgentStep()
                | ev.FollowUps()
                | ev.Timings()
            ):
                return []
            case _:
                assert_never(event)

    def close(self, status: ItemStatus) -> list[Frame]:
        """End every open item with `status`."""
        return [
            *self._close_message(status),
            *self._close_reasoning(status),
            *self._close_calls(status),
        ]

    def _open(self, item: dict[str, Any], status: ItemStatus) -> list[Frame]:
        """Close what is open and add `item`."""
        frames = self.close(status)
        self.items.append(item)
        added = {**item, "content": []} if "content" in item else dict(item)
        index = len(self.items) - 1
        frames.append({"type": "response.output_item.added", **_at(index), "item": added})
        return frames

    def _where(self, index: int, content_index: int | None = None) -> dict[str, Any]:
        where: dict[str, Any] = {"item_id": self.items[index]["id"], "output_index": index}
        if content_index is not None:
            where["content_index"] = content_index
        return where

    # --- the message ---

    def _say(self, kind: str, text: str, logprobs: list[Any]) -> list[Frame]:
        frames: list[Frame] = []
        if self._message is None:
            item = {
                "id": self._ids("msg_"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            frames += self._open(item, "completed")
            self._message = len(self.items) - 1
        content: list[dict[str, Any]] = self.items[self._message]["content"]
        if not content or content[-1]["type"] != kind:
            frames += self._close_part()
            content.append(_blank(kind))
            where = self._where(self._message, len(content) - 1)
            frames.append({"type": "response.content_part.added", **where, "part": _blank(kind)})
        where = self._where(self._message, len(content) - 1)
        self._pieces.append(text)
        if kind == "refusal":
            frames.append({"type": "response.refusal.delta", **where, "delta": text})
        else:
            content[-1]["logprobs"].extend(logprobs)
            frames.append(
                {"type": "response.output_text.delta", **where, "delta": text, "logprobs": logprobs}
            )
        return frames

    def _close_part(self) -> list[Frame]:
        if self._message is None or not self.items[self._message]["content"]:
            return []
        content = self.items[self._message]["content"]
        part = content[-1]
        where = self._where(self._message, len(content) - 1)
        text = "".join(self._pieces)
        self._pieces = []
        if part["type"] == "refusal":
            part["refusal"] = text
            done: dict[str, Any] = {"type": "response.refusal.done", **where, "refusal": text}
        else:
            part["text"] = text
            part["annotations"] = [  # the passages this part cites by their [n]
                {"type": "url_citation", **cited}
                for cited in citations(self._cited, text, self._base_url)
                if cited["end_index"]
            ]
            added = [
                {
                    "type": "response.output_text.annotation.added",
                    **where,
                    "annotation_index": index,
                    "annotation": annotation,
                }
                for index, annotation in enumerate(part["annotations"])
            ]
            done = {"type": "response.output_text.done", **where, "text": text}
            done["logprobs"] = part["logprobs"]
            return [*added, done, {"type": "response.content_part.done", **where, "part": part}]
        return [done, {"type": "response.content_part.done", **where, "part": part}]

    def _close_message(self, status: ItemStatus) -> list[Frame]:
        if self._message is None:
            return []
        frames = self._close_part()
        item = self.items[self._message]
        item["status"] = status
        frames.append({"type": "response.output_item.done", **_at(self._message), "item": item})
        self._message = None
        return frames

    # --- reasoning ---

    def _think(self, text: str) -> list[Frame]:
        frames: list[Frame] = []
        if self._reasoning is None:
            item = {"id": self._ids("rs_"), "type": "reasoning", "summary": [], "content": []}
            frames += self._open(item, "completed")
            self._reasoning = len(self.items) - 1
            self.items[-1]["content"].append(_blank("reasoning_text"))
            where = self._where(self._reasoning, 0)
            part = _blank("reasoning_text")
            frames.append({"type": "response.content_part.added", **where, "part": part})
        self._pieces.append(text)
        where = self._where(self._reasoning, 0)
        frames.append({"type": "response.reasoning_text.delta", **where, "delta": text})
        return frames

    def _close_reasoning(self, status: ItemStatus) -> list[Frame]:
        if self._reasoning is None:
            return []
        item = self.items[self._reasoning]
        part = item["content"][0]
        part["text"] = "".join(self._pieces)
        self._pieces = []
        where = self._where(self._reasoning, 0)
        if status == "incomplete":
            item["status"] = status
        frames: list[Frame] = [
            {"type": "response.reasoning_text.done", **where, "text": part["text"]},
            {"type": "response.content_part.done", **where, "part": part},
            {"type": "response.output_item.done", **_at(self._reasoning), "item": item},
        ]
        self._reasoning = None
        return frames

    # --- the client's tool calls ---

    def _call(self, event: ev.ToolCallDelta) -> list[Frame]:
        frames: list[Frame] = []
        if self._message is not None or self._reasoning is not None:
            frames += [*self._close_message("completed"), *self._close_reasoning("completed")]
        found = self._calls.get(event.index)
        if found is None:
            kind = "custom_tool_call" if event.custom else "function_call"
            item = {
                "id": self._ids("ctc_" if event.custom else "fc_"),
                "type": kind,
                **({} if event.custom else {"status": "in_progress"}),  # custom calls have none
                _WRITTEN[kind]: "",
                "call_id": event.id or self._ids("call_"),
                "name": event.name or "",
            }
            self.items.append(item)
            found = self._calls[event.index] = (len(self.items) - 1, [])
            frames.append(
                {"type": "response.output_item.added", **_at(found[0]), "item": dict(item)}
            )
        else:
            item = self.items[found[0]]
            item["call_id"] = event.id or item["call_id"]
            item["name"] += event.name or ""
        if event.arguments:
            found[1].append(event.arguments)
            where = self._where(found[0])
            frames.append({"type": _DELTA[item["type"]], **where, "delta": event.arguments})
        return frames

    def _close_calls(self, status: ItemStatus) -> list[Frame]:
        frames: list[Frame] = []
        for index, pieces in sorted(self._calls.values()):
            item = self.items[index]
            field = _WRITTEN[item["type"]]
            item[field] = "".join(pieces)
            done = {"type": _DELTA[item["type"]].replace(".delta", ".done"), **self._where(index)}
            if item["type"] == "function_call":
                item["status"] = status
                done["name"] = item["name"]
            done[field] = item[field]
            frames.append(done)
            frames.append({"type": "response.output_item.done", **_at(index), "item": item})
        self._calls = {}
        return frames


_WRITTEN = {"function_call": "arguments", "custom_tool_call": "input"}
"""Where each kind of call item holds what the model wrote."""
_DELTA = {
    "function_call": "response.function_call_arguments.delta",
    "custom_tool_call": "response.custom_tool_call_input.delta",
}


def _logprobs(logprobs: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Chat logprobs as Responses has them: `bytes` and `top_logprobs` always there."""
    return [_logprob(entry, top=True) for entry in (logprobs or {}).get("content") or ()]


def _logprob(entry: dict[str, Any], *, top: bool) -> dict[str, Any]:
    token = str(entry.get("token", ""))
    out = {
        "token": token,
        "logprob": entry.get("logprob", 0.0),
        "bytes": entry.get("bytes") or list(token.encode()),
    }
    if top:
        out["top_logprobs"] = [_logprob(t, top=False) for t in entry.get("top_logprobs") or ()]
    return out


def _at(index: int) -> dict[str, int]:
    return {"output_index": index}


def _blank(kind: str) -> dict[str, Any]:
    """A content part of `kind` before its first delta."""
    if kind == "output_text":
        return {"type": kind, "text": "", "annotations": [], "logprobs": []}
    if kind == "refusal":
        return {"type": kind, "refusal": ""}
    return {"type": kind, "text": ""}
