"""Answers that involve the response cache: a stored completion played back (a hit), and a fresh
answer that is stored once it has completed (a miss)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from app.chat.tool_loop import ToolTurn
from app.chat.turn import Answer, collect, usage_chunk
from app.ids import new_id
from app.memory.cache import ResponseCache
from app.providers.base import Chunk

CacheStatus = Literal["hit", "miss", "bypass"]


class CachedAnswer:
    """A stored completion answered again, with a fresh id and `created` and the stored usage;
    streamed as a role chunk, the content, the client's tool calls, the finish chunk and (when
    asked for) the usage chunk."""

    cache_status: CacheStatus = "hit"

    def __init__(self, completion: dict[str, Any], *, include_usage: bool) -> None:
        self.id = new_id("chatcmpl-")
        self.created = int(time.time())
        self.model: str = completion["model"]
        self.usage: dict[str, Any] | None = completion.get("usage")
        self._completion = completion
        self._include_usage = include_usage

    async def chunks(self) -> AsyncIterator[Chunk | str]:
        for choice in self._completion["choices"]:
            index, message = choice["index"], choice["message"]
            yield self._chunk(index, {"role": "assistant", "content": ""})
            if message.get("reasoning_content"):
                yield self._chunk(index, {"reasoning_content": message["reasoning_content"]})
            if message.get("content"):
                logprobs = choice.get("logprobs")
                yield self._chunk(index, {"content": message["content"]}, logprobs=logprobs)
            if message.get("refusal"):
                yield self._chunk(index, {"refusal": message["refusal"]})
            if message.get("tool_calls"):
                calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
                yield self._chunk(index, {"tool_calls": calls})
            yield self._chunk(index, {}, finish=choice["finish_reason"])
        if self._include_usage:
            yield usage_chunk(self)

    async def collect(self) -> dict[str, Any]:
        return {**self._completion, "id": self.id, "created": self.created}

    def _chunk(
        self,
        index: int,
        delta: dict[str, Any],
        *,
        finish: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> Chunk:
        chunk: Chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            ],
        }
        if self._include_usage:
            chunk["usage"] = None
        return chunk


class StoringAnswer:
    """`answer` passed through unchanged, then stored under `key` once it has completed: every
    choice finished, no error, the client stayed to the end, and `model` (not a fallback)
    answered. A stream is assembled from its chunks as they pass; one whose content carries the
    tool loop's status lines is not stored, since a plain answer would not have them.

    An answer is kept no longer than the results of the tools it used (`tool_ttl`), and not at
    all when one of them failed or is not cached: a cached answer is only as fresh as they are.
    """

    def __init__(
        self,
        answer: Answer,
        *,
        cache: ResponseCache,
        key: str,
        model: str,
        status: CacheStatus,
        tool_ttl: Callable[[str], float],
        tool_status_in_stream: bool,
    ) -> None:
        self.id = answer.id
        self.created = answer.created
        self.model = answer.model
        self.cache_status = status
        self._answer = answer
        self._cache = cache
        self._key = key
        self._storable = answer.model == model
        self._tool_ttl = tool_ttl
        self._tool_status_in_stream = tool_status_in_stream

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._answer.usage

    @usage.setter
    def usage(self, value: dict[str, Any] | None) -> None:
        self._answer.usage = value

    async def chunks(self) -> AsyncIterator[Chunk | str]:
        seen: list[Chunk] = []
        finished = False
        async for chunk in self._answer.chunks():
            if not isinstance(chunk, str):
                seen.append(chunk)
                finished = finished or any(c.get("finish_reason") for c in chunk["choices"])
            yield chunk
        used = self._answer.tools_used if isinstance(self._answer, ToolTurn) else []
        if not (self._storable and finished) or (used and self._tool_status_in_stream):
            return
        completion = await collect(_Played(self, seen))
        if isinstance(self._answer, ToolTurn):
            completion["tools_used"] = [outcome.summary() for outcome in used]
        await self._store(completion)

    async def collect(self) -> dict[str, Any]:
        completion = await self._answer.collect()
        if self._storable:
            await self._store(completion)
        return completion

    async def _store(self, completion: dict[str, Any]) -> None:
        ttl = self._cache.ttl
        if isinstance(self._answer, ToolTurn):
            for outcome in self._answer.tools_used:
                ttl = min(ttl, self._tool_ttl(outcome.name) if outcome.ok else 0.0)
        if ttl > 0:
            await self._cache.put(self._key, completion, ttl)


class _Played:
    """Chunks that have already been seen, as an `Answer` for `collect`."""

    def __init__(self, answer: Answer, seen: list[Chunk]) -> None:
        self.id = answer.id
        self.created = answer.created
        self.model = answer.model
        self.usage = answer.usage
        self._seen = seen

    async def chunks(self) -> AsyncIterator[Chunk | str]:
        for chunk in self._seen:
            yield chunk

    async def collect(self) -> dict[str, Any]:
        return await collect(self)


def cache_status(answer: Answer) -> CacheStatus | None:
    """`hit`, `miss` or `bypass` (Redis unavailable) for a cacheable request's answer, else
    None."""
    if isinstance(answer, CachedAnswer | StoringAnswer):
        return answer.cache_status
    return None
