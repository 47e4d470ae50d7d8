"""Caches in Redis: whole chat answers (`cache:llm:`), tool results (`cache:tool:<name>:`), and the
tool detector's decisions made by asking a model and the intent classifier's verdicts
(`cache:intent:`). Hits and misses are counted in
the hash `cache:stats`, so the figures are the same on every replica.

A Redis error never fails a request: it is logged (at most once a minute) and the caches are
bypassed for a second, so a Redis that is gone costs one failed command a second, not one a
request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.config import StateSettings

log = logging.getLogger(__name__)

STATS_KEY: Final = "cache:stats"
PREFIXES: Final = {"llm": "cache:llm:", "tools": "cache:tool:", "intent": "cache:intent:"}
"""Each cache's name (as in /cache/stats and /cache/invalidate/<name>) and key prefix."""

_RETRY_AFTER = 1.0
_LOG_EVERY = 60.0
_SCAN_COUNT = 1000
_KEYS_LIMIT = 100_000
_MEMORY_SAMPLE = 1000
_UNLINK_BATCH = 500
# One round trip per lookup: the value, and the hit or miss counted.
_GET_COUNTED = """
local value = redis.call('GET', KEYS[1])
redis.call('HINCRBY', KEYS[2], value and ARGV[1] or ARGV[2], 1)
return value
"""
# Request fields that do not change the answer; `n` is always 1 when answers are cached.
_NOT_IN_KEY = frozenset({"model", "stream", "stream_options", "user", "cache", "n"})


@dataclass(frozen=True, slots=True)
class Hit:
    """A value found in a cache (which may itself be None)."""

    value: Any


class _Guard:
    """Whether the caches should try Redis now: not for `_RETRY_AFTER` seconds after an error."""

    def __init__(self) -> None:
        self._down_until = 0.0
        self._logged_at = -_LOG_EVERY

    @property
    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, doing: str, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + _RETRY_AFTER
        if now - self._logged_at >= _LOG_EVERY:
            self._logged_at = now
            kind = type(exc).__name__
            log.warning("caches bypassed: Redis failed to %s (%s: %s)", doing, kind, exc)


class _Namespace:
    """One cache's keys in Redis: counted lookups and stores, both bypassed while Redis fails."""

    def __init__(self, redis: aioredis.Redis, guard: _Guard, name: str) -> None:
        self.name = name
        self.prefix = PREFIXES[name]
        self._redis = redis
        self._guard = guard
        self._counters = [f"{name}:hits", f"{name}:misses"]
        self._get = redis.register_script(_GET_COUNTED)
        self.lookups = {"hit": 0, "miss": 0, "bypass": 0}
        """This process's lookups, by result (bypass: Redis was down)."""

    @property
    def available(self) -> bool:
        return self._guard.up

    async def get(self, key: str) -> bytes | None:
        if not self._guard.up:
            self.lookups["bypass"] += 1
            return None
        try:
            value: bytes | None = await self._get(keys=[key, STATS_KEY], args=self._counters)
        except (RedisError, OSError) as exc:
            self._guard.failed("read", exc)
            self.lookups["bypass"] += 1
            return None
        self.lookups["miss" if value is None else "hit"] += 1
        return value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        if not self._guard.up:
            return
        try:
            await self._redis.set(key, value, px=max(1, round(ttl * 1000)))
        except (RedisError, OSError) as exc:
            self._guard.failed("write", exc)


class ResponseCache:
    """Whole `chat.completion`s of deterministic requests: temperature 0 or `cache: true` (and
    not `cache: false`), one choice, LLM_CACHE_TTL > 0."""

    def __init__(self, space: _Namespace, ttl: float) -> None:
        self.space = space
        self.ttl = ttl

    @property
    def available(self) -> bool:
        """False while Redis is being bypassed after an error."""
        return self.space.available

    def wants(self, body: Mapping[str, Any], choices: int) -> bool:
        """Whether this request's answer is cached; decided without Redis."""
        if self.ttl <= 0 or choices != 1:
            return False
        flag = body.get("cache")
        return flag is True or (flag is not False and body.get("temperature") == 0)

    def key(self, body: Mapping[str, Any], model: str, gateway_tools: Collection[str]) -> str:
        """The key of `body` (the request as sent upstream, persona applied) answered by
        `model` (the resolved `provider/model` id) with `gateway_tools` offered or detected."""
        fields = {k: v for k, v in body.items() if v is not None and k not in _NOT_IN_KEY}
        fields["model"] = model
        if "temperature" in fields:
            fields["temperature"] = float(fields["temperature"])
        if gateway_tools:
            fields["gateway_tools"] = sorted(gateway_tools)
        return self.space.prefix + _digest(fields)

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.space.get(key)
        if raw is None:
            return None
        record: dict[str, Any] = orjson.loads(raw)
        return record

    async def put(self, key: str, record: dict[str, Any], ttl: float | None = None) -> None:
        """Store `record` (a stored answer) for `ttl` seconds (default: LLM_CACHE_TTL)."""
        await self.space.put(key, orjson.dumps(record), ttl or self.ttl)


class ToolCache:
    """Tool results per tool and arguments, for the tools TOOL_CACHE_TTL names."""

    def __init__(self, space: _Namespace, ttls: Mapping[str, float]) -> None:
        self.space = space
        self._ttls = {name: ttl for name, ttl in ttls.items() if ttl > 0}

    def ttl(self, name: str) -> float:
        """Seconds `name`'s results are kept; 0 when they are not cached."""
        return self._ttls.get(name, 0.0)

    def _key(self, name: str, arguments: Mapping[str, Any]) -> str:
        return f"{self.space.prefix}{name}:{_digest(arguments)}"

    async def get(self, name: str, arguments: Mapping[str, Any]) -> Hit | None:
        raw = await self.space.get(self._key(name, arguments))
        return None if raw is None else Hit(orjson.loads(raw))

    async def put(self, name: str, arguments: Mapping[str, Any], result: Any) -> None:
        try:
            value = orjson.dumps(result)
        except TypeError:
            log.debug("%s returned a result that is not JSON; not cached", name)
            return
        await self.space.put(self._key(name, arguments), value, self.ttl(name))


class IntentCache:
    """The tool a model chose for a message (`{"name", "arguments"}`, or None when it chose
    none), per message, model and enabled tools; the intent classifier's verdict on a message
    (a JSON object), per message and scope; and the classifier's example vectors, so that a
    restarted gateway need not embed them again."""

    def __init__(self, space: _Namespace, ttl: float) -> None:
        self.space = space
        self.ttl = ttl

    def _key(self, text: str, enabled: Collection[str], model: str) -> str:
        return self.space.prefix + _digest([text.strip(), sorted(enabled), model])

    async def get(self, text: str, enabled: Collection[str], model: str) -> Hit | None:
        if self.ttl <= 0:
            return None
        raw = await self.space.get(self._key(text, enabled, model))
        if raw is None:
            return None
        return Hit(orjson.loads(raw))

    async def put(
        self, text: str, enabled: Collection[str], model: str, found: dict[str, Any] | None
    ) -> None:
        if self.ttl <= 0:
            return
        await self.space.put(self._key(text, enabled, model), orjson.dumps(found), self.ttl)

    def _verdict_key(self, text: str, scope: str) -> str:
        return self.space.prefix + _digest({"text": text.strip(), "scope": scope})

    async def verdict(self, text: str, scope: str) -> dict[str, Any] | None:
        """The verdict kept for `text` in `scope` (the classifier's intents, embedder, model)."""
        if self.ttl <= 0:
            return None
        raw = await self.space.get(self._verdict_key(text, scope))
        if raw is None:
            return None
        verdict: dict[str, Any] = orjson.loads(raw)
        return verdict

    async def keep_verdict(self, text: str, scope: str, verdict: dict[str, Any]) -> None:
        if self.ttl <= 0:
            return
        await self.space.put(self._verdict_key(text, scope), orjson.dumps(verdict), self.ttl)

    def _vectors_key(self, scope: str) -> str:
        return self.space.prefix + _digest({"vectors": scope})

    async def vectors(self, scope: str) -> bytes | None:
        """The classifier's example vectors kept for `scope` (its intents and embedder)."""
        if self.ttl <= 0:
            return None
        return await self.space.get(self._vectors_key(scope))

    async def keep_vectors(self, scope: str, vectors: bytes) -> None:
        if self.ttl <= 0:
            return
        await self.space.put(self._vectors_key(scope), vectors, self.ttl)


@dataclass(frozen=True, slots=True)
class Caches:
    llm: ResponseCache
    tools: ToolCache
    intent: IntentCache

    @classmethod
    def open(cls, redis: aioredis.Redis, settings: StateSettings) -> Caches:
        """The three caches on one client, bypassed together when it fails."""
        guard = _Guard()
        return cls(
            llm=ResponseCache(_Namespace(redis, guard, "llm"), settings.llm_cache_ttl),
            tools=ToolCache(_Namespace(redis, guard, "tools"), settings.tool_cache_ttls),
            intent=IntentCache(_Namespace(redis, guard, "intent"), settings.llm_cache_ttl),
        )

    def lookups(self) -> dict[str, dict[str, int]]:
        """Each cache's lookups in this process, by result."""
        caches = (self.llm, self.tools, self.intent)
        return {cache.space.name: cache.space.lookups for cache in caches}


def _digest(value: Any) -> str:
    """SHA-256 of `value` as canonical JSON (sorted keys)."""
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(data).hexdigest()


async def stats(redis: aioredis.Redis) -> dict[str, dict[str, Any]]:
    """Per cache: hits, misses, hit rate, keys and the memory they use. Counting stops at
    `_KEYS_LIMIT` keys (then `keys_capped`), and the memory of at most `_MEMORY_SAMPLE` keys is
    measured and scaled to the count (then `memory_sampled`)."""
    fields = [f"{name}:{kind}" for name in PREFIXES for kind in ("hits", "misses")]
    values = await redis.hmget(STATS_KEY, fields)
    counters = {field: int(value or 0) for field, value in zip(fields, values, strict=True)}
    report = {}
    for name, prefix in PREFIXES.items():
        hits, misses = counters[f"{name}:hits"], counters[f"{name}:misses"]
        count, sample, capped = await _scan(redis, prefix)
        memory = 0
        if sample:
            async with redis.pipeline(transaction=False) as pipe:
                for key in sample:
                    pipe.memory_usage(key)
                measured = sum(used or 0 for used in await pipe.execute())
            memory = round(measured * count / len(sample))
        report[name] = {
            "hits": hits,
            "misses": misses,
            "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
            "keys": count,
            "keys_capped": capped,
            "memory_bytes": memory,
            "memory_sampled": len(sample) < count,
        }
    return report


async def _scan(redis: aioredis.Redis, prefix: str) -> tuple[int, list[bytes | str], bool]:
    """How many keys start with `prefix`, the first `_MEMORY_SAMPLE` of them, and whether the
    count stopped at `_KEYS_LIMIT`."""
    cursor, count = 0, 0
    sample: list[bytes | str] = []
    while True:
        cursor, keys = await redis.scan(cursor, match=prefix + "*", count=_SCAN_COUNT)
        count += len(keys)
        sample += keys[: _MEMORY_SAMPLE - len(sample)]
        if not cursor:
            return count, sample, False
        if count >= _KEYS_LIMIT:
            return count, sample, True


async def invalidate(redis: aioredis.Redis, name: str) -> int:
    """Remove every key of cache `name`; how many there were."""
    removed, batch = 0, []
    async for key in redis.scan_iter(match=PREFIXES[name] + "*", count=_SCAN_COUNT):
        batch.append(key)
        if len(batch) == _UNLINK_BATCH:
            removed += await redis.unlink(*batch)
            batch = []
    if batch:
        removed += await redis.unlink(*batch)
    return int(removed)
