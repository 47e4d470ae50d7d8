"""A turn with server-side tools: the model's tool calls are run by the gateway, their results fed
back as `role: "tool"` messages, and the model asked again, until it answers or MAX_TOOL_STEPS
rounds have passed (then it is asked once more without the gateway's tools).

What the client sees is one answer: content the model writes at any step streams through, the
gateway's tool calls never do (a status line and keep-alive comments stand in for them while the
tools run), and only the client's own tools come back as `tool_calls`. When a step calls both the
client's tools and the gateway's, the client's calls are returned and the gateway's are not run:
the client cannot send back results for calls it never saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from app.chat.turn import Turn, collect, usage_chunk, zero_usage
from app.ids import new_id
from app.providers.base import Chunk
from app.providers.router import Needs, OpenStream, Router
from app.tools.detector import Detected
from app.tools.registry import ToolOutcome, ToolRegistry

RUNNING = "running "
"""The keep-alive comment that announces the tools of a round: `running <name>, <name>`."""


@dataclass(frozen=True, slots=True)
class LoopSettings:
    max_steps: int
    total_timeout: float
    keepalive: float
    activity_in_content: bool


@dataclass(slots=True)
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""

    def message(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments or "{}"}
        return {"id": self.id, "type": "function", "function": function}


class ToolTurn:
    def __init__(
        self,
        *,
        router: Router,
        registry: ToolRegistry,
        body: dict[str, Any],
        model: str,
        detected: Detected | None,
        client_tools: Collection[str],
        stream: bool,
        include_usage: bool,
        settings: LoopSettings,
    ) -> None:
        self.id = new_id("chatcmpl-")
        self.created = int(time.time())
        self.model = model
        self.usage: dict[str, Any] | None = None
        self.tools_used: list[ToolOutcome] = []
        self._router = router
        self._registry = registry
        self._body = body
        self._opened: OpenStream | None = None
        self._finish_reason = "stop"
        self._detected = detected
        self._client_tools = set(client_tools)
        self._stream = stream
        self._include_usage = include_usage
        self._settings = settings
        self._deadline = time.monotonic() + settings.total_timeout
        self._role_sent = False
        self._content_sent = False

    async def open(self) -> None:
        """Ask the model with the gateway's tools offered and wait for its first chunk, so that
        a failure before it is still an HTTP status."""
        self._opened = await self._open(self._body["messages"], server_tools=True, first=True)
        self.model = self._opened.route.id

    async def chunks(self) -> AsyncIterator[Chunk | str]:
        messages: list[dict[str, Any]] = list(self._body["messages"])
        opened = self._opened
        if self._detected is not None:
            yield self._chunk({"role": "assistant", "content": ""})
            self._role_sent = True
            call = _Call(new_id("call_"), self._detected.name)
            async for item in self._run([call], self._detected.arguments):
                yield item
            messages = _with_context(messages, self.tools_used[-1])
        step = 0
        while True:
            if opened is None:
                opened = await self._open(messages, server_tools=False)
            calls: dict[int, _Call] = {}
            said: list[str] = []
            async for chunk in self._step(opened, calls, said):
                yield chunk
            mine = [c for c in calls.values() if c.name not in self._client_tools]
            theirs = [c for c in calls.values() if c.name in self._client_tools]
            if theirs or not mine or step >= self._settings.max_steps:
                async for chunk in self._finish(theirs, self._finish_reason):
                    yield chunk
                return
            async for item in self._run(mine):
                yield item
            messages = [
                *messages,
                {
                    "role": "assistant",
                    "content": "".join(said) or None,
                    "tool_calls": [c.message() for c in mine],
                },
                *(
                    {"role": "tool", "tool_call_id": c.id, "content": outcome.content}
                    for c, outcome in zip(mine, self.tools_used[-len(mine) :], strict=True)
                ),
            ]
            step += 1
            opened = await self._open(messages, server_tools=step < self._settings.max_steps)

    async def collect(self) -> dict[str, Any]:
        completion = await collect(self)
        completion["tools_used"] = [outcome.summary() for outcome in self.tools_used]
        return completion

    async def _step(
        self, opened: OpenStream, calls: dict[int, _Call], said: list[str]
    ) -> AsyncIterator[Chunk]:
        """One model answer: content passes through (and into `said`), tool-call deltas go into
        `calls`, and the finish reason is held back in `_finish_reason`."""
        remaining = max(0.001, self._deadline - time.monotonic())
        turn = Turn(
            opened, include_usage=False, total_timeout=remaining, id=self.id, created=self.created
        )
        finish = "stop"
        async for chunk in turn.chunks():
            choice = chunk["choices"][0]
            delta = choice["delta"]
            for part in delta.pop("tool_calls", None) or []:
                call = calls.setdefault(part.get("index", 0), _Call())
                call.id = part.get("id") or call.id
                function = part.get("function") or {}
                call.name += function.get("name") or ""
                call.arguments += function.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
                choice["finish_reason"] = None
            if self._role_sent:
                delta.pop("role", None)
            if delta.get("content"):
                said.append(delta["content"])
                self._content_sent = True
            if any(delta.values()):
                self._role_sent = True
                chunk["model"] = self.model
                if self._include_usage:
                    chunk["usage"] = None
                yield chunk
        self._add_usage(turn.usage)
        for call in calls.values():
            call.id = call.id or new_id("call_")
        self._finish_reason = finish

    async def _finish(self, client_calls: list[_Call], finish: str) -> AsyncIterator[Chunk]:
        if not self._role_sent:
            yield self._chunk({"role": "assistant", "content": ""})
        if client_calls:
            delta = {
                "tool_calls": [{"index": i, **c.message()} for i, c in enumerate(client_calls)]
            }
            yield self._chunk(delta)
            finish = "tool_calls"
        elif finish == "tool_calls":
            finish = "stop"
        yield self._chunk({}, finish)
        if self._include_usage:
            yield usage_chunk(self)

    async def _run(
        self, calls: list[_Call], arguments: dict[str, Any] | None = None
    ) -> AsyncIterator[Chunk | str]:
        """Run `calls` concurrently; meanwhile say so, in content and in keep-alive comments."""
        names = ", ".join(c.name for c in calls)
        if self._stream and self._settings.activity_in_content:
            if not self._role_sent:
                yield self._chunk({"role": "assistant", "content": ""})
                self._role_sent = True
            status = "".join(f"> Running tool: {c.name}\n" for c in calls) + "\n"
            yield self._chunk({"content": ("\n\n" if self._content_sent else "") + status})
        yield RUNNING + names
        tasks = [
            asyncio.ensure_future(
                self._registry.call(c.name, arguments if arguments is not None else c.arguments)
            )
            for c in calls
        ]
        try:
            while True:
                _, pending = await asyncio.wait(tasks, timeout=self._settings.keepalive)
                if not pending:
                    break
                yield f"still running {names}"
        finally:
            for task in tasks:
                task.cancel()
        self.tools_used += [task.result() for task in tasks]

    async def _open(
        self, messages: list[dict[str, Any]], *, server_tools: bool, first: bool = False
    ) -> OpenStream:
        body = {**self._body, "messages": messages}
        if not first:  # a "required" or named choice was the first step's; it would loop
            body.pop("tool_choice", None)
        tools = [t for t in body.get("tools") or [] if tool_name(t) in self._client_tools]
        if server_tools:
            tools += self._registry.schemas(exclude=self._client_tools)
        if tools:
            body["tools"] = tools
        else:
            body.pop("tools", None)
            body.pop("parallel_tool_calls", None)
        return await self._router.open_stream(
            self.model, body, Needs(tools=bool(self._client_tools))
        )

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Chunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk: Chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    def _add_usage(self, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        total = self.usage or zero_usage()
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            total[key] = total.get(key, 0) + (usage.get(key) or 0)
        self.usage = total


def tool_name(tool: dict[str, Any]) -> str:
    """The function name of an OpenAI `tools` entry."""
    return str((tool.get("function") or {}).get("name", ""))


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
