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

The passages a turn was grounded in reach OpenWebUI as its citation events (one
`{"event": {"type": "source", …}}` line per passage, in their order, so that the model's [1],
[2] become its citation chips) and every other client as OpenAI's `url_citation` annotations
(streamed: a delta before the finish; collected: `message.annotations`), each spanning the
passage's `[n]` in the text where the model cited it. What the turn remembered is a comment (and a
status line to OpenWebUI).
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
    """OpenWebUI's status and citation events for the gateway's tools, agent steps and
    passages; other clients would read such a line as a chunk without choices."""
    base_url: str = ""
    """Where the gateway is, for the passages' document URLs."""


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
    cited: tuple[dict[str, Any], ...] = ()
    said: list[str] = []
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
                    if cited and not choice:
                        said.append(text)
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
                case ev.AgentStep(name=name, seconds=seconds, detail=detail):
                    if options.status_events:
                        ended = f"{name}: {detail}" if detail else f"{name} done"
                        yield _status(f"{ended} in {seconds:.1f} s", done=True)
                case ev.Waiting(names=names):
                    yield comment("still running " + ", ".join(names))
                case ev.Sources(items=items):
                    if options.status_events:
                        for number, item in enumerate(items, start=1):
                            yield _event("source", owui_source(item, number))
                    else:
                        cited = items
                case ev.Remembered(changes=changes):
                    for change in changes:
                        if options.status_events:
                            yield _status(_remembered(change), done=True)
                        yield comment(_remembered(change))
                case ev.Finish(reason=reason, choice=choice):
                    if cited and not choice:
                        notes = url_citations(cited, "".join(said), options.base_url)
                        yield chunk({"annotations": notes})
                    yield chunk({}, choice, finish_reason=reason)
                case ev.Usage() | ev.FollowUps() | ev.Timings():
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
    return _event("status", {"description": description, "done": done})


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps({"event": {"type": kind, "data": data}}) + b"\n\n"


def _remembered(change: dict[str, str]) -> str:
    verb = {"add": "Remembered", "update": "Updated memory", "delete": "Forgot"}
    return f"{verb.get(change['event'], 'Memory')}: {change['text']}"


def _label(item: dict[str, Any]) -> str:
    name = str(item.get("name") or item.get("title") or item.get("url") or item.get("source"))
    return f"{name} ({item['location']})" if item.get("location") else name


def owui_source(item: dict[str, Any], number: int) -> dict[str, Any]:
    """A source as OpenWebUI's citation event carries it: one id per passage (so its [n] is
    ours), the passage's text, its page (0-based, as OpenWebUI counts) and similarity."""
    url = item.get("url")
    key = f"{item['document_id']}#{number}" if item.get("document_id") else str(url or number)
    meta: dict[str, Any] = {"source": key, "name": _label(item)}
    if url:
        meta["external"] = True
    if isinstance(item.get("page"), int):
        meta["page"] = item["page"] - 1
    data: dict[str, Any] = {
        "source": {"id": key, "name": _label(item), **({"url": url} if url else {})},
        "document": [str(item.get("text") or item.get("title") or url or key)],
        "metadata": [meta],
    }
    if "similarity" in item:
        data["distances"] = [item["similarity"]]
    return data


def citations(items: tuple[dict[str, Any], ...], text: str, base_url: str) -> list[dict[str, Any]]:
    """`items` as citations of `text`: `{url, title, start_index, end_index}` each, spanning the
    item's `[n]` where the model cited it (else empty at the start)."""
    found = []
    for number, item in enumerate(items, start=1):
        marker = f"[{number}]"
        start = text.find(marker)
        span = (start, start + len(marker)) if start >= 0 else (0, 0)
        found.append(
            {
                "url": item.get("url") or f"{base_url}{item.get('path', '')}",
                "title": _label(item),
                "start_index": span[0],
                "end_index": span[1],
            }
        )
    return found


def url_citations(items: tuple[dict[str, Any], ...], text: str, base_url: str) -> list[Any]:
    """OpenAI's chat `url_citation` annotations of `items` in `text`."""
    found = citations(items, text, base_url)
    return [{"type": "url_citation", "url_citation": cited} for cited in found]


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


async def completion(turn: Turn, base_url: str = "") -> dict[str, Any]:
    """The whole turn as one `chat.completion`."""
    choices: dict[int, _Choice] = {}
    used: list[dict[str, Any]] = []
    cited: tuple[dict[str, Any], ...] = ()
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
            case ev.Sources(items=items):
                cited = items
            case (
                ev.Usage()
                | ev.ToolStarted()
                | ev.Waiting()
                | ev.Remembered()
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
    if cited and body["choices"]:
        message = body["choices"][0]["message"]
        message["annotations"] = url_citations(cited, message["content"] or "", base_url)
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
