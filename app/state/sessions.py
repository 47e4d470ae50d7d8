"""Chat sessions in Redis: who owns each, its long-term summary, the messages kept verbatim, and
per-turn metrics.

    session:<id>             hash   id, user_id, summary, folded, message_count, created_at,
                                    updated_at; `folded` counts the messages (from the first)
                                    that the summary covers
    session:<id>:messages    list   JSON messages, the newest last
    session:<id>:metrics     list   JSON per-turn metrics, the newest METRICS_KEPT
    user-sessions:<user>     zset   the user's session ids scored by their last update
    chat:totals              hash   counters over all sessions, for /v1/vitals

A turn's writes are one Lua script, so they happen all or not at all, and ownership is checked
in the same step. Each write refreshes the session's keys to SESSION_TTL. The message list keeps
the last MAX_SESSION_MESSAGES, but never drops a message the summary does not cover yet: folding
comes before trimming, and the list is trimmed again when a fold has caught up.

Any Redis failure raises `StateUnavailable` (503): a turn whose history cannot be kept fails
rather than being answered and forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.state.redis import reachable

log = logging.getLogger(__name__)

Message = dict[str, Any]

TOTALS_KEY: Final = "chat:totals"
METRICS_KEPT: Final = 1000

# KEYS: meta, messages, metrics, user index, totals.
# ARGV: id, user, now, ttl ms, oldest score kept in the index, MAX_SESSION_MESSAGES,
# METRICS_KEPT, metric JSON, number of (totals field, increment) pairs, the pairs, the messages.
_APPEND = """
local meta, msgs, metrics, index, totals = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local owner = redis.call('HGET', meta, 'user_id')
if owner and owner ~= ARGV[2] then return -1 end
if not owner then
  redis.call('HSET', meta, 'id', ARGV[1], 'user_id', ARGV[2], 'created_at', ARGV[3],
             'summary', '', 'folded', 0, 'message_count', 0)
  redis.call('HINCRBY', totals, 'sessions', 1)
end
local first = 10 + 2 * tonumber(ARGV[9])
local count = redis.call('HINCRBY', meta, 'message_count', #ARGV - first + 1)
redis.call('HSET', meta, 'updated_at', ARGV[3])
for i = first, #ARGV do redis.call('RPUSH', msgs, ARGV[i]) end
local folded = tonumber(redis.call('HGET', meta, 'folded'))
redis.call('LTRIM', msgs, -math.max(tonumber(ARGV[6]), count - folded), -1)
redis.call('RPUSH', metrics, ARGV[8])
redis.call('LTRIM', metrics, -tonumber(ARGV[7]), -1)
for i = 10, first - 1, 2 do redis.call('HINCRBY', totals, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', index, ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. ARGV[5])
for _, key in ipairs({meta, msgs, metrics, index}) do redis.call('PEXPIRE', key, ARGV[4]) end
return count
"""

# KEYS: meta, messages. Returns [] or [meta fields and values, the messages not yet folded].
_LOAD = """
local meta = redis.call('HGETALL', KEYS[1])
if #meta == 0 then return {} end
local count = tonumber(redis.call('HGET', KEYS[1], 'message_count'))
local folded = tonumber(redis.call('HGET', KEYS[1], 'folded'))
local unfolded = {}
if count > folded then unfolded = redis.call('LRANGE', KEYS[2], folded - count, -1) end
return {meta, unfolded}
"""

# KEYS: meta, messages. ARGV: a message's position in the whole session (from 0). Returns the
# message, or nil when the session has no such message or no longer keeps it.
_AT = """
local count = tonumber(redis.call('HGET', KEYS[1], 'message_count') or 0)
local at = tonumber(ARGV[1])
if at >= count then return false end
return redis.call('LINDEX', KEYS[2], at - count)
"""

# KEYS: meta, messages, totals. ARGV: summary, folded expected, folded now, MAX_SESSION_MESSAGES.
_SUMMARY = """
if redis.call('HGET', KEYS[1], 'folded') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'summary', ARGV[1], 'folded', ARGV[3])
local count = tonumber(redis.call('HGET', KEYS[1], 'message_count'))
redis.call('LTRIM', KEYS[2], -math.max(tonumber(ARGV[4]), count - tonumber(ARGV[3])), -1)
redis.call('HINCRBY', KEYS[3], 'folds', 1)
return 1
"""


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: str
    summary: str
    folded: int
    message_count: int
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "session",
            "user_id": self.user_id,
            "summary": self.summary,
            "message_count": self.message_count,
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """What one answered turn adds: its messages and its metrics."""

    messages: list[Message]
    metric: dict[str, Any]
    totals: dict[str, int]
    """Increments of the counters in `chat:totals`."""


def _key(session_id: str, part: str = "") -> str:
    return f"session:{session_id}{':' + part if part else ''}"


def _user_key(user_id: str) -> str:
    return f"user-sessions:{user_id}"


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _session(fields: Mapping[bytes | str, bytes | str]) -> Session:
    text = {_str(k): _str(v) for k, v in fields.items()}
    return Session(
        id=text["id"],
        user_id=text["user_id"],
        summary=text.get("summary", ""),
        folded=int(text.get("folded", 0)),
        message_count=int(text.get("message_count", 0)),
        created_at=float(text["created_at"]),
        updated_at=float(text.get("updated_at", text["created_at"])),
    )


def _pairs(flat: list[bytes]) -> dict[bytes | str, bytes | str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class SessionStore:
    def __init__(self, redis: aioredis.Redis, *, ttl: float, max_messages: int) -> None:
        self._redis = redis
        self._ttl = ttl
        self._max_messages = max_messages
        self._append = redis.register_script(_APPEND)
        self._load = redis.register_script(_LOAD)
        self._summary = redis.register_script(_SUMMARY)
        self._at = redis.register_script(_AT)

    async def get(self, session_id: str) -> Session | None:
        with reachable("session store"):
            fields = await self._redis.hgetall(_key(session_id))
        return _session(fields) if fields else None

    async def load(self, session_id: str) -> tuple[Session | None, list[Message]]:
        """The session (None if it does not exist) and its messages the summary does not cover,
        oldest first, read in one step."""
        with reachable("session store"):
            found = await self._load(keys=[_key(session_id), _key(session_id, "messages")])
        if not found:
            return None, []
        meta, unfolded = found
        return _session(_pairs(meta)), [orjson.loads(raw) for raw in unfolded]

    async def append_turn(self, session_id: str, user_id: str, record: TurnRecord) -> int | None:
        """Add a turn to the session, creating it for `user_id` if new; the message count after
        it, or None when the session belongs to another user."""
        now = time.time()
        totals = [item for pair in record.totals.items() for item in pair]
        keys = [
            _key(session_id),
            _key(session_id, "messages"),
            _key(session_id, "metrics"),
            _user_key(user_id),
            TOTALS_KEY,
        ]
        args = [
            session_id,
            user_id,
            repr(now),
            max(1, round(self._ttl * 1000)),
            repr(now - self._ttl),
            self._max_messages,
            METRICS_KEPT,
            orjson.dumps(record.metric),
            len(record.totals),
            *totals,
            *(orjson.dumps(m) for m in record.messages),
        ]
        with reachable("session store"):
            count = int(await self._append(keys=keys, args=args))
        return None if count < 0 else count

    async def save_summary(self, session_id: str, summary: str, *, was: int, now: int) -> bool:
        """Store the summary that now covers the first `now` messages, if the session still
        exists and its summary still covers `was` (else another fold got there first)."""
        keys = [_key(session_id), _key(session_id, "messages"), TOTALS_KEY]
        with reachable("session store"):
            done = await self._summary(keys=keys, args=[summary, was, now, self._max_messages])
        return bool(done)

    async def messages(self, session_id: str, limit: int) -> list[Message]:
        """The last `limit` messages kept verbatim, oldest first."""
        with reachable("session store"):
            raw = await self._redis.lrange(_key(session_id, "messages"), -limit, -1)
        return [orjson.loads(item) for item in raw]

    async def message_at(self, session_id: str, position: int) -> Message | None:
        """The message at `position` in the whole session (from 0: the first user message),
        unless the session has none there or no longer keeps it (MAX_SESSION_MESSAGES)."""
        with reachable("session store"):
            keys = [_key(session_id), _key(session_id, "messages")]
            raw = await self._at(keys=keys, args=[position])
        return None if raw is None else cast("Message", orjson.loads(raw))

    async def metrics(self, session_id: str) -> list[dict[str, Any]]:
        with reachable("session store"):
            raw = await self._redis.lrange(_key(session_id, "metrics"), 0, -1)
        return [orjson.loads(item) for item in raw]

    async def for_user(self, user_id: str, limit: int) -> list[Session]:
        """The user's sessions, the most recently updated first."""
        index = _user_key(user_id)
        with reachable("session store"):
            newest = await self._redis.zrange(index, 0, limit - 1, desc=True)
            ids = [i.decode() for i in cast("list[bytes]", newest)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hgetall(_key(session_id))
                found = await pipe.execute()
            gone = [i for i, fields in zip(ids, found, strict=True) if not fields]
            if gone:  # expired sessions leave their ids behind in the index
                await self._redis.zrem(index, *gone)
        return [_session(fields) for fields in found if fields]

    async def delete(self, session: Session) -> None:
        with reachable("session store"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*(_key(session.id, part) for part in ("", "messages", "metrics")))
                pipe.zrem(_user_key(session.user_id), session.id)
                await pipe.execute()

    async def forget_user(self, user_id: str) -> int:
        """Delete every session of `user_id`; how many there were."""
        index = _user_key(user_id)
        with reachable("session store"):
            raw = await self._redis.zrange(index, 0, -1)
            ids = [i.decode() for i in cast("list[bytes]", raw)]
            async with self._redis.pipeline(transaction=True) as pipe:
                for session_id in ids:
                    pipe.delete(*(_key(session_id, part) for part in ("", "messages", "metrics")))
                pipe.delete(index)
                await pipe.execute()
        return len(ids)

    async def count_user(self, user_id: str) -> int:
        """How many sessions of `user_id` Redis holds."""
        with reachable("session store"):
            return int(await self._redis.zcard(_user_key(user_id)))

    async def totals(self) -> dict[str, int]:
        with reachable("session store"):
            raw = await self._redis.hgetall(TOTALS_KEY)
        return {_str(k): int(v) for k, v in raw.items()}

    @asynccontextmanager
    async def folding(self, session_id: str, expires: float) -> AsyncIterator[bool]:
        """A lock that lets one fold at a time work on the session, across processes, and
        expires after `expires` seconds: yields whether it was taken (it is not waited for)."""
        lock = self._redis.lock(
            _key(session_id, "folding"), timeout=expires, blocking=False, thread_local=False
        )
        with reachable("session store"):
            taken = await lock.acquire()
        try:
            yield taken
        finally:
            if taken:
                try:
                    await lock.release()
                except RedisError as exc:  # it expires by itself
                    log.info("fold lock of %s not released: %s", session_id, exc)


def aggregate(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-session figures over the turns' metrics (the last METRICS_KEPT turns)."""
    calls = [call for turn in turns for call in turn.get("tool_calls", [])]
    by_tool: dict[str, list[float]] = {}
    for call in calls:
        by_tool.setdefault(call["name"], []).append(call["duration_ms"])
    by_agent: dict[str, list[dict[str, Any]]] = {}
    for step in (step for turn in turns for step in turn.get("agents", [])):
        by_agent.setdefault(step["name"], []).append(step)
    return {
        "turns": len(turns),
        "ttft_ms": _spread([t["ttft_ms"] for t in turns]),
        "total_ms": _spread([t["total_ms"] for t in turns]),
        "tool_calls": {
            "count": len(calls),
            "failed": sum(1 for call in calls if not call["ok"]),
            "latency_ms": _spread([call["duration_ms"] for call in calls]),
            "by_tool": {name: _spread(ms) | {"count": len(ms)} for name, ms in by_tool.items()},
        },
        "tokens": {
            key: sum(int(t.get(key, 0)) for t in turns)
            for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        },
        "agents": {
            name: _spread([step["duration_ms"] for step in steps])
            | {"count": len(steps), "tokens": sum(step["tokens"] for step in steps)}
            for name, steps in by_agent.items()
        },
        "last": turns[-1] if turns else None,
    }


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"avg": None, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "avg": round(sum(ordered) / len(ordered), 1),
        "p50": rank(0.5),
        "p95": rank(0.95),
        "max": ordered[-1],
    }
