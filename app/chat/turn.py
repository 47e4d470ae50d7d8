"""One answer on its way to the client: the provider's chunks stamped with the gateway's id,
checked for completeness, bounded in total time, and collected into a completion on demand."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from app.errors import UpstreamError, UpstreamTimeout
from app.ids import new_id
from app.providers.base import Chunk
from app.providers.router import OpenStream


class Answer(Protocol):
    """What the HTTP layer streams or collects: a plain `Turn` or a `ToolTurn`."""

    id: str
    created: int
    model: str
    usage: dict[str, Any] | None

    def chunks(self) -> AsyncIterator[Chunk | str]:
        """OpenAI chunks; a `str` is an SSE comment (a keep-alive), not part of the answer."""
        ...

    async def collect(self) -> dict[str, Any]: ...


class Turn:
    def __init__(
        self,
        opened: OpenStream,
        *,
        include_usage: bool,
        total_timeout: float,
        id: str | None = None,
        created: int | None = None,
    ) -> None:
        self.id = id or new_id("chatcmpl-")
        self.created = created or int(time.time())
        self.model = opened.route.id
        self.provider = opened.route.provider.name
        self.usage: dict[str, Any] | None = None
        self._opened = opened
        self._include_usage = include_usage
        self._deadline = time.monotonic() + total_timeout
        self._total_timeout = total_timeout

    async def chunks(self) -> AsyncIterator[Chunk]:
        """OpenAI chunks in order: role first, the same id on each, `finish_reason` last, then
        the usage chunk if asked for. An upstream that stops early raises instead of ending."""
        finished = False
        first = True
        rest = self._opened.rest
        try:
            if self._stamp(self._opened.first, first):
                first = False
                finished = _has_finish(self._opened.first)
                yield self._opened.first
            async for chunk in rest:
                if self._stamp(chunk, first):
                    first = False
                    finished = finished or _has_finish(chunk)
                    yield chunk
                if time.monotonic() > self._deadline:
                    raise UpstreamTimeout(
                        self.provider, f"the answer exceeded TOTAL_TIMEOUT ({self._total_timeout}s)"
                    )
        finally:
            await rest.aclose()
        if not finished:
            raise UpstreamError(self.provider, "the stream ended before the answer was complete")
        if self._include_usage:
            yield usage_chunk(self)

    def _stamp(self, chunk: Chunk, first: bool) -> bool:
        """Make `chunk` the gateway's own; False for a usage-only chunk, which is held back."""
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        choices = chunk.get("choices")
        if not choices:
            return False
        chunk["id"] = self.id
        chunk["object"] = "chat.completion.chunk"
        chunk["created"] = self.created
        chunk["model"] = self.model
        if self._include_usage:
            chunk["usage"] = None
        elif "usage" in chunk:
            del chunk["usage"]
        for choice in choices:
            choice.setdefault("index", 0)
            choice.setdefault("finish_reason", None)
            delta = choice.get("delta")
            if delta is None:
                delta = choice["delta"] = {}
            if first and "role" not in delta:
                delta["role"] = "assistant"
            if "tool_calls" in delta:
                _fix_tool_calls(delta["tool_calls"])
        return True

    async def collect(self) -> dict[str, Any]:
        return await collect(self)


async def collect(answer: Answer) -> dict[str, Any]:
    """The whole answer as one `chat.completion`."""
    choices: dict[int, dict[str, Any]] = {}
    async for chunk in answer.chunks():
        if not isinstance(chunk, str):
            for choice in chunk["choices"]:
                _merge(choices, choice)
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [_finish(choices[i]) for i in sorted(choices)],
        "usage": answer.usage or zero_usage(),
    }


def usage_chunk(answer: Answer) -> Chunk:
    """The last chunk of a stream whose client asked for usage."""
    return {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "choices": [],
        "usage": answer.usage or zero_usage(),
    }


def zero_usage() -> dict[str, int]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _has_finish(chunk: Chunk) -> bool:
    return any(choice.get("finish_reason") for choice in chunk["choices"])


def _fix_tool_calls(calls: list[dict[str, Any]]) -> None:
    for position, call in enumerate(calls):
        call.setdefault("index", position)
        if "id" in call and "type" not in call:
            call["type"] = "function"


def _merge(choices: dict[int, dict[str, Any]], choice: dict[str, Any]) -> None:
    index = choice.get("index", 0)
    acc = choices.setdefault(
        index, {"content": [], "reasoning": [], "refusal": [], "calls": {}, "logprobs": None}
    )
    delta = choice.get("delta") or {}
    for key, field in (("content", "content"), ("reasoning", "reasoning_content")):
        if delta.get(field):
            acc[key].append(delta[field])
    if delta.get("refusal"):
        acc["refusal"].append(delta["refusal"])
    for call in delta.get("tool_calls") or []:
        slot = acc["calls"].setdefault(
            call.get("index", 0), {"id": None, "type": "function", "name": "", "arguments": []}
        )
        slot["id"] = call.get("id") or slot["id"]
        function = call.get("function") or {}
        slot["name"] += function.get("name") or ""
        slot["arguments"].append(function.get("arguments") or "")
    logprobs = choice.get("logprobs")
    if logprobs and logprobs.get("content"):
        acc["logprobs"] = acc["logprobs"] or {"content": []}
        acc["logprobs"]["content"].extend(logprobs["content"])
    if choice.get("finish_reason"):
        acc["finish_reason"] = choice["finish_reason"]
    acc["index"] = index


def _finish(acc: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(acc["content"])}
    if acc["calls"]:
        message["tool_calls"] = [
            {
                "id": slot["id"] or new_id("call_"),
                "type": slot["type"],
                "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
            }
            for _, slot in sorted(acc["calls"].items())
        ]
        message["content"] = message["content"] or None
    if acc["reasoning"]:
        message["reasoning_content"] = "".join(acc["reasoning"])
    message["refusal"] = "".join(acc["refusal"]) or None
    return {
        "index": acc["index"],
        "message": message,
        "logprobs": acc["logprobs"],
        "finish_reason": acc.get("finish_reason", "stop"),
    }
