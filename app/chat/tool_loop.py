"""A turn with server-side tools: the model's tool calls are run by the gateway, their results fed
back as `role: "tool"` messages, and the model asked again, until it answers or MAX_TOOL_STEPS
rounds have passed (then it is asked once more without the gateway's tools).

What the turn emits is one answer: text the model writes at any step, `ToolStarted` /
`Waiting` / `ToolFinished` while the gateway's tools run, and only the client's own tools as
`ToolCallDelta`s. When a step calls both the client's tools and the gateway's, the client's calls
are returned and the gateway's are not run: the client cannot send back results for calls it
never saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from app.chat.events import (
    Event,
    Finish,
    Text,
    ToolCallDelta,
    ToolFinished,
    ToolStarted,
    Usage,
    Waiting,
)
from app.chat.turn import read
from app.ids import new_id
from app.providers.router import Needs, OpenStream, Route, Router
from app.tools.detector import Detected
from app.tools.registry import ToolOutcome, ToolRegistry


@dataclass(frozen=True, slots=True)
class LoopSettings:
    max_steps: int
    total_timeout: float
    keepalive: float


@dataclass(slots=True)
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""
    custom: bool = False

    def message(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments or "{}"}
        return {"id": self.id, "type": "function", "function": function}


class ToolLoop:
    def __init__(
        self,
        *,
        router: Router,
        registry: ToolRegistry,
        body: dict[str, Any],
        route: Route,
        detected: Detected | None,
        client_tools: Collection[str],
        settings: LoopSettings,
        needs: Needs,
    ) -> None:
        self._router = router
        self._registry = registry
        self._body = body
        self._route = route
        self._opened: OpenStream | None = None
        self._detected = detected
        self._client_tools = set(client_tools)
        self._settings = settings
        self._deadline = time.monotonic() + settings.total_timeout
        self._usage: Usage | None = None
        self._needs = needs

    async def open(self) -> None:
        """Ask the model with the gateway's tools offered and wait for its first chunk, so that
        a failure before it is still an HTTP status."""
        self._opened = await self._open(self._body["messages"], server_tools=True)

    async def events(self) -> AsyncIterator[Event]:
        messages: list[dict[str, Any]] = list(self._body["messages"])
        opened = self._opened
        if self._detected is not None:
            call = _Call(new_id("call_"), self._detected.name)
            outcomes: list[ToolOutcome] = []
            async for event in self._run([call], outcomes, self._detected.arguments):
                yield event
            messages = _with_context(messages, outcomes[0])
        step = 0
        spoke = False  # the answer so far has text: a later round's text is a new paragraph
        while True:
            if opened is None:
                opened = await self._open(messages, server_tools=False)
            calls: dict[int, _Call] = {}
            said: list[str] = []
            finish = "stop"
            async for event in read(opened, self._deadline, self._settings.total_timeout):
                match event:
                    case ToolCallDelta():
                        call = calls.get(event.index) or calls.setdefault(event.index, _Call())
                        call.id = event.id or call.id
                        call.name += event.name or ""
                        call.arguments += event.arguments
                        call.custom = event.custom
                    case Finish():
                        finish = event.reason
                    case Usage():
                        self._add(event)
                    case Text():
                        if spoke and not said:
                            yield Text("\n\n")
                        said.append(event.text)
                        yield event
                    case _:
                        yield event
            spoke = spoke or bool(said)
            for call in calls.values():
                call.id = call.id or new_id("call_")
            mine = [c for c in calls.values() if c.name not in self._client_tools]
            theirs = [c for c in calls.values() if c.name in self._client_tools]
            if theirs or not mine or step >= self._settings.max_steps:
                for event in self._finish(theirs, finish):
                    yield event
                return
            outcomes = []
            async for event in self._run(mine, outcomes):
                yield event
            messages = [
                *messages,
                {
                    "role": "assistant",
                    "content": "".join(said) or None,
                    "tool_calls": [c.message() for c in mine],
                },
                *(
                    {"role": "tool", "tool_call_id": c.id, "content": outcome.content}
                    for c, outcome in zip(mine, outcomes, strict=True)
                ),
            ]
            step += 1
            opened = await self._open(messages, server_tools=step < self._settings.max_steps)

    def _finish(self, client_calls: list[_Call], finish: str) -> list[Event]:
        events: list[Event] = [
            ToolCallDelta(
                i, c.id, c.name, c.arguments or ("" if c.custom else "{}"), custom=c.custom
            )
            for i, c in enumerate(client_calls)
        ]
        if client_calls:
            finish = "tool_calls"
        elif finish == "tool_calls":
            finish = "stop"
        events.append(Finish(finish))
        if self._usage is not None:
            events.append(self._usage)
        return events

    async def _run(
        self,
        calls: list[_Call],
        outcomes: list[ToolOutcome],
        arguments: dict[str, Any] | None = None,
    ) -> AsyncIterator[Event]:
        """Run `calls` concurrently, saying so, and append their outcomes in order."""
        for call in calls:
            shown = arguments if arguments is not None else ToolOutcome.shown(call.arguments)
            yield ToolStarted(call.id, call.name, shown)
        tasks = [
            asyncio.ensure_future(
                self._registry.call(c.name, arguments if arguments is not None else c.arguments)
            )
            for c in calls
        ]
        try:
            pending: set[asyncio.Future[ToolOutcome]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(
                    pending, timeout=self._settings.keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    yield Waiting(
                        tuple(c.name for c, t in zip(calls, tasks, strict=True) if not t.done())
                    )
        finally:
            for task in tasks:
                task.cancel()
        for call, task in zip(calls, tasks, strict=True):
            outcomes.append(task.result())
            yield ToolFinished(call.id, task.result())

    async def _open(self, messages: list[dict[str, Any]], *, server_tools: bool) -> OpenStream:
        body = {**self._body, "messages": messages}
        tools = [t for t in body.get("tools") or [] if tool_name(t) in self._client_tools]
        if server_tools:
            tools += self._registry.schemas(exclude=self._client_tools)
        if tools:
            body["tools"] = tools
        else:
            body.pop("tools", None)
            body.pop("parallel_tool_calls", None)
        return await self._router.open(self._route, body, self._needs)

    def _add(self, usage: Usage) -> None:
        self._usage = usage if self._usage is None else self._usage + usage


def tool_name(tool: dict[str, Any]) -> str:
    """The name of an OpenAI `tools` entry: a function, or a custom tool."""
    definition = tool.get("custom") if tool.get("type") == "custom" else tool.get("function")
    return str((definition or {}).get("name", ""))


def _with_context(messages: list[dict[str, Any]], outcome: ToolOutcome) -> list[dict[str, Any]]:
    """`messages` with the detected tool's result placed before the last user message's text,
    where even a small model without function calling reads it."""
    note = (
        f"[The gateway ran the {outcome.name} tool for this message; its result follows. "
        "Answer from it and name its source.]\n"
        f"{outcome.content}\n[End of tool result]\n\n"
    )
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = [{"type": "text", "text": note}, *content]
        else:
            content = note + (content or "")
        return [*messages[:position], {**message, "content": content}, *messages[position + 1 :]]
    return messages
