"""The OpenAI chat completions wire: a turn's events as `chat.completion.chunk` server-sent events,
or collected into one `chat.completion`.

Streamed, each choice starts with a role chunk; text, reasoning, refusals and the client's tool
calls follow as deltas, the finish reason as a chunk of its own, then (when asked for) the usage
chunk, then `[DONE]`. The content is the model's alone: the gateway's own tools show as SSE
comments (`: running <name>`, `: still running …`), to OpenWebUI as its status events (a
`{"event": {"type": "status", …}}` line, shown above the message), and only where the
`activity_in_content` option is on as a `> Running tool:` line in the text. An error after the
first byte is an `{"error": …}` event before `[DONE]`, never a silently cut answer. Collected, the
gateway's tool calls are listed in `tools_used`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, assert_never

import orjson

from app.api.wire.sse import comment, mid_answer
from app.chat import events as ev
from app.chat.turn import Turn
from app.ids import new_id
from app.tools.registry import ToolOutcome

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class StreamOptions:
    include_usage: bool = False
    activity_in_content: bool = False
    status_events: bool = False
    """OpenWebUI's status events for the gateway's tools and agent steps; other clients would
    read such a line as a chunk without choices."""


async def stream(turn: Turn, options: StreamOptions) -> AsyncIterator[bytes]:
    """The turn as `data: <chunk>` events, then `data: [DONE]`."""
    head = b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,' % (
        turn.id.encode(),
        turn.created,
        orjson.dumps(turn.model),
    )
    tail = b',"usage":null}\n\n' if options.include_usage else b"}\n\n"

    def chunk(delta: dict[str, Any], choice: int = 0, **extra: Any) -> bytes:
        body = {"index": choice, "delta": delta, "logprobs": None, "finish_reason": None, **extra}
        return head + b'"choices":[' + orjson.dumps(body) + b"]" + tail

    started = {0}
    status_last = text_sent = False
    running: set[str] = set()
    yield chunk({"role": "assistant", "content": ""})
    try:
        async for event in turn.events():
            choice = getattr(event, "choice", 0)
            if choice not in started:
                started.add(choice)
                yield chunk({"role": "assistant", "content": ""}, choice)
            match event:
                case ev.Text(text=text, choice=choice, logprobs=logprobs):
                    if status_last:  # the status line ends its paragraph already
                        text = text.lstrip("\n")
                        if not text:
                            continue
                    text_sent, status_last = True, False
                    yield chunk({"content": text}, choice, logprobs=logprobs)
                case ev.Reasoning(text=text, choice=choice):
                    yield chunk({"reasoning_content": text}, choice)
                case ev.Refusal(text=text, choice=choice):
                    yield chunk({"refusal": text}, choice)
                case ev.ToolCallDelta(choice=choice):
                    yield chunk({"tool_calls": [_call_delta(event)]}, choice)
                case ev.ToolStarted(call_id=call_id, name=name):
                    if options.activity_in_content:
                        gap = "\n\n" if text_sent and not status_last else ""
                        status_last = True
                        yield chunk({"content": f"{gap}> Running tool: {name}\n\n"})
                    if options.status_events:
                        running.add(call_id)
                        yield _status(f"Running {name}…", done=False)
                    yield comment(f"running {name}")
                case ev.ToolFinished(call_id=call_id, outcome=outcome):
                    if options.status_events:
                        running.discard(call_id)
                        yield _status(_finished(outcome), done=not running)
                case ev.AgentStep(name=name, phase="start"):
                    if options.status_events:
                        yield _status(f"{name}…", done=False)
                case ev.AgentStep(name=name, seconds=seconds):
                    if options.status_events:
                        yield _status(f"{name} done in {seconds:.1f} s", done=True)
                case ev.Waiting(names=names):
                    yield comment("still running " + ", ".join(names))
                case ev.Finish(reason=reason, choice=choice):
                    yield chunk({}, choice, finish_reason=reason)
                case ev.Usage() | ev.Sources() | ev.FollowUps() | ev.Timings():
                    pass
                case _:
                    assert_never(event)
    except Exception as exc:
        error = mid_answer(exc, f"stream from {turn.model}")
        yield b"data: " + orjson.dumps(error.body()) + b"\n\n"
    else:
        if options.include_usage:
            usage = orjson.dumps((turn.usage or ev.NO_USAGE).public())
            yield head + b'"choices":[],"usage":' + usage + b"}\n\n"
    yield DONE


def _status(description: str, *, done: bool) -> bytes:
    status = {"type": "status", "data": {"description": description, "done": done}}
    return b"data: " + orjson.dumps({"event": status}) + b"\n\n"


def _finished(outcome: ToolOutcome) -> str:
    if not outcome.ok:
        return f"{outcome.name} failed"
    ms = outcome.seconds * 1000
    took = f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
    return f"Ran {outcome.name} in {took}"


def _call_delta(event: ev.ToolCallDelta) -> dict[str, Any]:
    call: dict[str, Any] = {"index": event.index}
    if event.id:
        call["id"] = event.id
        call["type"] = event.type
    part: dict[str, str] = {}
    if event.name:
        part["name"] = event.name
    part["input" if event.custom else "arguments"] = event.arguments
    call[event.type] = part
    return call


async def completion(turn: Turn) -> dict[str, Any]:
    """The whole turn as one `chat.completion`."""
    choices: dict[int, _Choice] = {}
    used: list[dict[str, Any]] = []
    async for event in turn.events():
        match event:
            case ev.Text(text=text, choice=choice, logprobs=logprobs):
                slot = _slot(choices, choice)
                slot.content.append(text)
                if logprobs and logprobs.get("content"):
                    slot.logprobs.extend(logprobs["content"])
            case ev.Reasoning(text=text, choice=choice):
                _slot(choices, choice).reasoning.append(text)
            case ev.Refusal(text=text, choice=choice):
                _slot(choices, choice).refusal.append(text)
            case ev.ToolCallDelta(choice=choice):
                _slot(choices, choice).add_call(event)
            case ev.Finish(reason=reason, choice=choice):
                _slot(choices, choice).finish = reason
            case ev.ToolFinished(outcome=outcome):
                used.append(outcome.summary())
            case (
                ev.Usage()
                | ev.ToolStarted()
                | ev.Waiting()
                | ev.Sources()
                | ev.AgentStep()
                | ev.FollowUps()
                | ev.Timings()
            ):
                pass
            case _:
                assert_never(event)
    body: dict[str, Any] = {
        "id": turn.id,
        "object": "chat.completion",
        "created": turn.created,
        "model": turn.model,
        "choices": [choices[i].message(i) for i in sorted(choices)],
        "usage": (turn.usage or ev.NO_USAGE).public(),
    }
    if turn.lists_tools:
        body["tools_used"] = used
    return body


def _slot(choices: dict[int, _Choice], choice: int) -> _Choice:
    slot = choices.get(choice)
    if slot is None:
        slot = choices[choice] = _Choice()
    return slot


class _Choice:
    __slots__ = ("calls", "content", "finish", "logprobs", "reasoning", "refusal")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.logprobs: list[Any] = []
        self.calls: dict[int, list[Any]] = {}
        self.finish = "stop"

    def add_call(self, event: ev.ToolCallDelta) -> None:
        slot = self.calls.setdefault(event.index, [None, "", [], event.type])
        slot[0] = event.id or slot[0]
        slot[1] += event.name or ""
        slot[2].append(event.arguments)

    def message(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call_id or new_id("call_"),
                    "type": kind,
                    kind: {
                        "name": name,
                        "input" if kind == "custom" else "arguments": "".join(arguments),
                    },
                }
                for _, (call_id, name, arguments, kind) in sorted(self.calls.items())
            ]
            message["content"] = message["content"] or None
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        message["refusal"] = "".join(self.refusal) or None
        return {
            "index": index,
            "message": message,
            "logprobs": {"content": self.logprobs} if self.logprobs else None,
            "finish_reason": self.finish,
        }
