"""A turn on its way out: its identity (id, created, model) and its events, and the reading of a
provider's OpenAI chunks as events, checked for completeness and bounded in total time."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from app.chat.events import (
    NO_USAGE,
    Event,
    Finish,
    Reasoning,
    Refusal,
    Text,
    ToolCallDelta,
    ToolFinished,
    Usage,
)
from app.errors import AnswerTooLong, GatewayError, UpstreamError
from app.ids import new_id
from app.ops.logging import CONTENT_CHARS, Exchange, exchange
from app.ops.metrics import Metrics, TurnRecord
from app.providers.router import OpenStream

if TYPE_CHECKING:
    from app.ops.tracing import TurnSpan  # imported only when tracing is on

CacheStatus = Literal["hit", "miss", "bypass"]
_ID_PREFIX = "chatcmpl-"
_ANSWER = frozenset({Reasoning, Refusal, ToolCallDelta})
"""Besides `Text`, the kinds whose first event is the answer's first token."""


@dataclass(frozen=True, slots=True)
class Meter:
    """Who is told of a turn as its events pass (the metrics, the turn's span, or both), what
    operation it is, and when it was asked (time.perf_counter())."""

    metrics: Metrics | None
    span: TurnSpan | None
    operation: str
    started: float

    def tool(self, finished: ToolFinished) -> None:
        outcome = finished.outcome
        if self.metrics is not None:
            self.metrics.tool_call(outcome.name, outcome.ok, outcome.seconds)
        if self.span is not None:
            self.span.tool(finished.call_id, outcome.name, outcome.ok, outcome.seconds)

    def record(
        self, model: str, first: float, usage: Usage, finishes: list[str], error: str
    ) -> None:
        record = TurnRecord(
            operation=self.operation,
            model=model,
            seconds=time.perf_counter() - self.started,
            ttft=first - self.started if first else None,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            error=error,
            finish_reasons=tuple(finishes),
        )
        if self.metrics is not None:
            self.metrics.turn(record)
        if self.span is not None:
            self.span.end(record)


@dataclass(slots=True)
class Turn:
    """What an entry point gets from the engine: read `events()` once. `usage` is set when the
    turn reports it; `lists_tools` says whether a plain answer lists the gateway's tool calls
    (`tools_used`); `cache` is set for a cacheable request; `session_id` and `user_id` for a
    turn of a stored conversation; `tools_dropped` counts the client's tools not sent to a
    model that cannot call them; `tools_run` names the gateway's tools that ran, as they
    finish; `meter` records the turn as its events pass; `ended` is called when they end
    (however they end)."""

    model: str
    source: AsyncIterator[Event]
    id: str = field(default_factory=lambda: new_id(_ID_PREFIX))
    created: int = field(default_factory=lambda: int(time.time()))
    usage: Usage | None = None
    lists_tools: bool = False
    cache: CacheStatus | None = None
    session_id: str | None = None
    user_id: str | None = None
    tools_dropped: int = 0
    tools_run: list[str] = field(default_factory=list)
    meter: Meter | None = None
    ended: Callable[[Turn], None] | None = None

    def id_as(self, prefix: str) -> str:
        """The turn's id as another wire gives it: `prefix` (`msg_`, `resp_`) for `chatcmpl-`."""
        return prefix + self.id.removeprefix(_ID_PREFIX)

    async def events(self) -> AsyncGenerator[Event, None]:
        meter = self.meter
        told = exchange.get(None)  # the request answered, whose access line names model and usage
        source = self.source
        if told is not None:
            told.model = self.model
            if told.content:
                source = _noted(source, told)
        first = 0.0
        finishes: list[str] = []
        error = "cancelled"  # unless the events end or fail: the client went away
        try:
            async for event in source:
                if type(event) is Text:  # most events: checked first, and cheaply
                    first = first or time.perf_counter()
                else:
                    if not first and type(event) in _ANSWER:
                        first = time.perf_counter()
                    if type(event) is Usage:
                        self.usage = event
                        if told is not None:
                            told.input_tokens = event.prompt_tokens
                            told.output_tokens = event.completion_tokens
                    elif type(event) is ToolFinished:
                        self.tools_run.append(event.outcome.name)
                        if meter is not None:
                            meter.tool(event)
                    elif meter is not None and type(event) is Finish:
                        finishes.append(event.reason)
                yield event
            error = ""
        except GatewayError as exc:
            error = exc.code
            raise
        except Exception:
            error = "_OTHER"
            raise
        finally:
            if meter is not None:
                meter.record(self.model, first, self.usage or NO_USAGE, finishes, error)
            if self.ended is not None:
                self.ended(self)


async def _noted(source: AsyncIterator[Event], told: Exchange) -> AsyncGenerator[Event, None]:
    """`source`, the beginning of whose answer is kept for the content log (LOG_CONTENT)."""
    parts: list[str] = []
    size = 0
    try:
        async for event in source:
            if type(event) is Text and event.choice == 0 and size < CONTENT_CHARS:
                parts.append(event.text)
                size += len(event.text)
            yield event
    finally:
        told.answer = "".join(parts)[:CONTENT_CHARS]


async def read(opened: OpenStream, deadline: float, total_timeout: float) -> AsyncIterator[Event]:
    """The events of one upstream answer: its text, reasoning, refusals and tool-call deltas as
    they come, each choice's finish, then the usage the upstream reported. An upstream that stops
    early, or passes `deadline` (time.monotonic()), raises instead of ending."""
    provider = opened.route.provider.name
    finished = False
    usage: dict[str, Any] | None = None
    rest = opened.rest
    chunk = opened.first
    try:
        while True:
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                for event in _events(choice):
                    finished = finished or type(event) is Finish
                    yield event
            if time.monotonic() > deadline:
                raise AnswerTooLong(provider, total_timeout)
            try:
                chunk = await anext(rest)
            except StopAsyncIteration:
                break
    finally:
        await rest.aclose()
    if not finished:
        raise UpstreamError(provider, "the stream ended before the answer was complete")
    if usage:
        yield usage_of(usage)


def _events(choice: dict[str, Any]) -> list[Event]:
    index = choice.get("index") or 0
    delta = choice.get("delta") or {}
    if len(delta) == 1 and (text := delta.get("content")) and not choice.get("finish_reason"):
        return [Text(text, index, choice.get("logprobs"))]  # most chunks: a piece of text
    events: list[Event] = []
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning:  # DeepSeek and vLLM say reasoning_content; OpenRouter and others reasoning
        events.append(Reasoning(reasoning, index))
    if delta.get("content"):
        events.append(Text(delta["content"], index, choice.get("logprobs")))
    if delta.get("refusal"):
        events.append(Refusal(delta["refusal"], index))
    for position, call in enumerate(delta.get("tool_calls") or ()):
        at, call_id = call.get("index", position), call.get("id")
        if "custom" in call:  # OpenAI's free-form tools: `input` where functions have arguments
            custom = call["custom"] or {}
            name, text = custom.get("name"), custom.get("input") or ""
            events.append(ToolCallDelta(at, call_id, name, text, index, custom=True))
        else:
            function = call.get("function") or {}
            name, text = function.get("name"), function.get("arguments") or ""
            events.append(ToolCallDelta(at, call_id, name, text, index))
    if choice.get("finish_reason"):
        events.append(Finish(choice["finish_reason"], index))
    return events


def usage_of(usage: dict[str, Any]) -> Usage:
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return Usage(prompt, completion, int(usage.get("total_tokens") or prompt + completion))
