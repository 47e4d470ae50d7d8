"""Users' ratings of answers, and what produced each answer, in Redis:

    feedback:answer:<tail>        string  JSON {model, pipeline, tools, owner} of one answer, by
                                          the tail of its id (below); FEEDBACK_TTL
    feedback:<id>                 string  JSON of one user's rating of one answer
    feedback:index                zset    the ratings' ids, scored by when they were given
    feedback:index:model:<m>      zset    the same, of the answers of model m
    feedback:index:pipeline:<p>   zset    the same, of the answers of pipeline p
    feedback:totals:model         hash    `up:<model>` and `down:<model>`: the ratings as they
                                          stand
    feedback:totals:pipeline      hash    the same per pipeline
    feedback:user:<owner>         set     the ids of the owner's ratings
    feedback:answers:<owner>      zset    the tails of the owner's answers' records, scored by
                                          when they expire (ms); expires with the newest
    feedback:users:indexed        string  set once the ratings given before the owners' sets
                                          existed are in them

An answer's id is its turn's on every wire but for the wire's prefix (`chatcmpl-X`, `msg_X`,
`resp_X`, `cmpl-X`), so the tail after the prefix names the answer whichever id the client was
given. A rating's id is a digest of its owner and the answer it rates: a user's second rating of
an answer replaces the first, in one Lua script that moves the totals with it and keeps the
owner's set. `forget` deletes an owner's ratings, their entries in every index and their part of
the totals, and the owner's answers' records, in one Lua script too: a rating given meanwhile
either stands whole or is gone whole.

Any Redis failure raises `StateUnavailable` (503). The answers' records are written off the
responses' path, by `Recorder`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import orjson
import redis.asyncio as aioredis

from app.errors import StateUnavailable
from app.state.redis import reachable

log = logging.getLogger(__name__)

Rating = Literal[1, -1]

PIPELINE_PREFIX: Final = "pipeline/"
"""A pipeline's turns answer as model `pipeline/<id>`."""
_INDEX: Final = "feedback:index"
_TOTALS_MODEL: Final = "feedback:totals:model"
_TOTALS_PIPELINE: Final = "feedback:totals:pipeline"
_SCAN: Final = 200
"""Ids read at a time while a listing filters by rating (or by pipeline within a model)."""
_BATCH: Final = 256
"""Answers' records written in one call at most."""
_LINGER: Final = 0.02
"""Seconds the recorder gathers answers' records before it writes them."""

_USER: Final = "feedback:user:"
_ANSWERS: Final = "feedback:answers:"
_INDEXED: Final = "feedback:users:indexed"

# KEYS: the answers' records, then the set of each one's owner's answers, in the same order.
# ARGV: their TTL in ms, the time in ms, then their JSON, in the same order.
_REMEMBER = """
local n = #KEYS / 2
local ttl = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local trimmed = {}
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ttl)
  local answers = KEYS[n + i]
  redis.call('ZADD', answers, now + ttl, string.sub(KEYS[i], 17))
  if not trimmed[answers] then
    trimmed[answers] = true
    redis.call('ZREMRANGEBYSCORE', answers, '-inf', now)
    redis.call('PEXPIRE', answers, ttl)
  end
end
"""

# KEYS: the rating, the index, the model's index, the pipeline's index, the model totals, the
# pipeline totals, the owner's ratings. ARGV: the rating's JSON, its id, its time, its rating (1
# or -1), the model, the pipeline ('' for none). Returns the rating it replaced (0: none).
_RATE = """
local old = redis.call('GET', KEYS[1])
local before = 0
if old then before = tonumber(cjson.decode(old)['rating']) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[7], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2]) end
local rating = tonumber(ARGV[4])
if before ~= rating then
  local names = {[1] = 'up:', [-1] = 'down:'}
  redis.call('HINCRBY', KEYS[5], names[rating] .. ARGV[5], 1)
  if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[6], names[rating] .. ARGV[6], 1) end
  if before ~= 0 then
    redis.call('HINCRBY', KEYS[5], names[before] .. ARGV[5], -1)
    if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[6], names[before] .. ARGV[6], -1) end
  end
end
return before
"""

# KEYS: the owner's ratings, the owner's answers, the index, the model totals, the pipeline
# totals. ARGV: the owner. Each rating's own keys (it, its model's and pipeline's indexes) and the
# answers' records are known only once read, so they are not in KEYS (one Redis, not a cluster).
# Returns the model, pipeline ('' for none) and rating (up, down) of each rating deleted, then
# how many answers' records were deleted.
_FORGET = """
local names = {[1] = 'up', [-1] = 'down'}
local gone = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = 'feedback:' .. id
  local raw = redis.call('GET', key)
  if raw then
    local rating = cjson.decode(raw)
    if rating['owner'] == ARGV[1] then
      local name = names[tonumber(rating['rating'])]
      local pipeline = rating['pipeline']
      if type(pipeline) ~= 'string' then pipeline = '' end
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[3], id)
      redis.call('ZREM', 'feedback:index:model:' .. rating['model'], id)
      redis.call('HINCRBY', KEYS[4], name .. ':' .. rating['model'], -1)
      if pipeline ~= '' then
        redis.call('ZREM', 'feedback:index:pipeline:' .. pipeline, id)
        redis.call('HINCRBY', KEYS[5], name .. ':' .. pipeline, -1)
      end
      gone[#gone + 1] = rating['model']
      gone[#gone + 1] = pipeline
      gone[#gone + 1] = name
    end
  end
end
local answers = 0
for _, tail in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  answers = answers + redis.call('DEL', 'feedback:answer:' .. tail)
end
redis.call('DEL', KEYS[1], KEYS[2])
gone[#gone + 1] = answers
return gone
"""

# KEYS: pairs of a rating and its owner's set. Adds each rating that still exists to the set.
_INDEX_OWNERS = """
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('SADD', KEYS[i + 1], string.sub(KEYS[i], 10))
  end
end
"""


def pipeline_of(model: str) -> str | None:
    """The pipeline whose turn answered as `model`, if one did."""
    return model.removeprefix(PIPELINE_PREFIX) if model.startswith(PIPELINE_PREFIX) else None


def rating_name(rating: int) -> str:
    return "up" if rating > 0 else "down"


@dataclass(frozen=True, slots=True)
class Answer:
    """What produced an answer (its model, pipeline and the gateway's tools that ran), and
    whose it is."""

    model: str
    pipeline: str | None
    tools: tuple[str, ...]
    owner: str

    @classmethod
    def of(cls, model: str, tools: list[str] | tuple[str, ...], owner: str) -> Answer:
        return cls(model, pipeline_of(model), tuple(tools), owner)

    @classmethod
    def read(cls, data: dict[str, Any]) -> Answer:
        """From `fields`, as stored alone or within a rating."""
        return cls(data["model"], data["pipeline"], tuple(data["tools"]), data["owner"])

    def fields(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pipeline": self.pipeline,
            "tools": self.tools,
            "owner": self.owner,
        }


@dataclass(frozen=True, slots=True)
class Feedback:
    """One user's rating of one answer: an answer given with an id (`message_id`), or a
    session's message (`session_id`, `index`)."""

    owner: str
    answer: Answer
    rating: Rating
    comment: str | None
    created_at: float
    message_id: str | None = None
    session_id: str | None = None
    index: int | None = None

    @property
    def id(self) -> str:
        if self.message_id is not None:
            target = "answer:" + _tail(self.message_id)
        else:
            target = f"session:{self.session_id}:{self.index}"
        digest = hashlib.sha256(f"{self.owner}\n{target}".encode()).hexdigest()
        return "fb_" + digest[:24]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "feedback",
            "owner": self.owner,
            "message_id": self.message_id,
            "session_id": self.session_id,
            "index": self.index,
            "model": self.answer.model,
            "pipeline": self.answer.pipeline,
            "tools": list(self.answer.tools),
            "rating": self.rating,
            "comment": self.comment,
            "created_at": int(self.created_at),
        }


def _feedback(raw: bytes | str) -> Feedback:
    data = orjson.loads(raw)
    return Feedback(
        owner=data["owner"],
        answer=Answer.read(data),
        rating=data["rating"],
        comment=data["comment"],
        created_at=data["created_at"],
        message_id=data["message_id"],
        session_id=data["session_id"],
        index=data["index"],
    )


_PREFIX = re.compile(r"^[A-Za-z]+[-_]")


def _tail(answer_id: str) -> str:
    """The part of an answer's id after its wire's prefix."""
    return _PREFIX.sub("", answer_id, count=1)


def _answer_key(answer_id: str) -> str:
    return "feedback:answer:" + _tail(answer_id)


@dataclass(frozen=True, slots=True)
class Page:
    data: list[Feedback]
    has_more: bool


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """A rating that no longer stands: of an answer of `model` (and `pipeline`), up or down."""

    model: str
    pipeline: str | None
    rating: Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `forget` deleted of an owner: their ratings, and how many of their answers' records."""

    ratings: list[Withdrawn]
    answers: int


@dataclass(frozen=True, slots=True)
class Tally:
    up: int = 0
    down: int = 0

    def public(self) -> dict[str, Any]:
        count = self.up + self.down
        share = round(self.up / count, 3) if count else None
        return {"up": self.up, "down": self.down, "count": count, "positive_share": share}


class FeedbackStore:
    def __init__(self, redis: aioredis.Redis, *, ttl: float) -> None:
        self._redis = redis
        self._ttl_ms = max(1, round(ttl * 1000))
        self._rate = redis.register_script(_RATE)
        self._remember = redis.register_script(_REMEMBER)
        self._forget = redis.register_script(_FORGET)
        self._index_owners = redis.register_script(_INDEX_OWNERS)

    async def remember(self, answers: Sequence[tuple[str, Answer]]) -> None:
        """What produced each answer (by its id), for its ratings, in one call (a script: a
        pipeline costs the client several times as much CPU a record); each can be rated for
        FEEDBACK_TTL seconds."""
        keys = [_answer_key(answer_id) for answer_id, _ in answers]
        keys += [_ANSWERS + a.owner for _, a in answers]
        values = [orjson.dumps(a.fields()) for _, a in answers]
        with reachable("feedback store"):
            now = round(time.time() * 1000)
            await self._remember(keys=keys, args=[self._ttl_ms, now, *values])

    async def answer(self, answer_id: str) -> Answer | None:
        """The answer `answer_id` (an id any wire gave it), unless it is unknown or expired."""
        with reachable("feedback store"):
            raw = await self._redis.get(_answer_key(answer_id))
        return None if raw is None else Answer.read(orjson.loads(raw))

    async def rate(self, feedback: Feedback) -> int:
        """Store `feedback`, replacing its owner's earlier rating of the same answer; the rating
        it replaced (0: none)."""
        answer = feedback.answer
        value = orjson.dumps(
            {
                **answer.fields(),
                "owner": feedback.owner,
                "rating": feedback.rating,
                "comment": feedback.comment,
                "message_id": feedback.message_id,
                "session_id": feedback.session_id,
                "index": feedback.index,
                "created_at": feedback.created_at,
            }
        )
        fid = feedback.id
        keys = [
            "feedback:" + fid,
            _INDEX,
            _model_index(answer.model),
            _pipeline_index(answer.pipeline or ""),
            _TOTALS_MODEL,
            _TOTALS_PIPELINE,
            _USER + feedback.owner,
        ]
        at = repr(feedback.created_at)
        args = [value, fid, at, feedback.rating, answer.model, answer.pipeline or ""]
        with reachable("feedback store"):
            return int(await self._rate(keys=keys, args=args))

    async def forget(self, owner: str) -> Forgotten:
        """Delete every rating of `owner`, with its entries in the indexes and its part of the
        totals, and the owner's answers' records (those written before the owners' sets of
        answers existed are left to expire)."""
        keys = [_USER + owner, _ANSWERS + owner, _INDEX, _TOTALS_MODEL, _TOTALS_PIPELINE]
        with reachable("feedback store"):
            await self._index_owners_once()
            gone = cast("list[bytes | int]", await self._forget(keys=keys, args=[owner]))
        fields = [cast("bytes", field).decode() for field in gone[:-1]]
        ratings = [
            Withdrawn(model, pipeline or None, "up" if name == "up" else "down")
            for model, pipeline, name in zip(fields[::3], fields[1::3], fields[2::3], strict=True)
        ]
        return Forgotten(ratings, int(gone[-1]))

    async def count(self, owner: str) -> int:
        """How many ratings of `owner` their set holds (every one, once `forget` has run)."""
        with reachable("feedback store"):
            return int(await self._redis.scard(_USER + owner))

    async def _index_owners_once(self) -> None:
        """Put the ratings given before the owners' sets existed into them, once: the index is
        read `_SCAN` ids at a time (ZSCAN returns every id that stays in it throughout), and a
        rating deleted meanwhile is not added."""
        if await self._redis.exists(_INDEXED):
            return
        cursor = 0
        while True:
            cursor, scored = await self._redis.zscan(_INDEX, cursor, count=_SCAN)
            ids = [cast("bytes", member) for member, _ in scored]
            raws = await self._redis.mget([b"feedback:" + i for i in ids]) if ids else []
            keys: list[bytes | str] = []
            for fid, raw in zip(ids, raws, strict=True):
                if raw is not None:
                    keys += [b"feedback:" + fid, _USER + orjson.loads(raw)["owner"]]
            if keys:
                await self._index_owners(keys=keys)
            if cursor == 0:
                break
        await self._redis.set(_INDEXED, "1")

    async def page(
        self,
        *,
        model: str | None = None,
        pipeline: str | None = None,
        rating: int | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page | None:
        """The ratings, newest first, of `model`, `pipeline` and `rating` when given: `limit`
        of them after the one with id `after`; None when `after` is not among them."""
        if model is not None:
            index = _model_index(model)
        elif pipeline is not None:
            index = _pipeline_index(pipeline)
        else:
            index = _INDEX
        with reachable("feedback store"):
            start = 0
            if after is not None:
                rank = cast("int | None", await self._redis.zrevrank(index, after))
                if rank is None:
                    return None
                start = rank + 1
            # the index holds only what is asked for, unless a rating (or a pipeline within a
            # model) is asked for too: then it is read in larger steps and filtered
            exact = rating is None and (model is None or pipeline is None)
            step = limit + 1 if exact else max(_SCAN, limit + 1)
            found: list[Feedback] = []
            while len(found) <= limit:
                newest = await self._redis.zrevrange(index, start, start + step - 1)
                ids = cast("list[bytes]", newest)
                if not ids:
                    break
                start += len(ids)
                raws = await self._redis.mget([b"feedback:" + i for i in ids])
                for raw in raws:
                    if raw is None:
                        continue
                    item = _feedback(raw)
                    if (pipeline is None or item.answer.pipeline == pipeline) and (
                        rating is None or item.rating == rating
                    ):
                        found.append(item)
        return Page(found[:limit], len(found) > limit)

    async def totals(self) -> dict[str, dict[str, Tally]]:
        """The ratings as they stand, per model (`models`) and per pipeline (`pipelines`)."""
        with reachable("feedback store"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(_TOTALS_MODEL)
                pipe.hgetall(_TOTALS_PIPELINE)
                by_model, by_pipeline = await pipe.execute()
        return {"models": _tallies(by_model), "pipelines": _tallies(by_pipeline)}


class Recorder:
    """The answers' records, written off the responses' path: `add` queues one, and one task at
    a time writes what has gathered within `linger` seconds, up to `_BATCH` records a call. The
    records of many answers thus cost one call, and one Redis connection rather than one each
    (a call costs the client about 60 µs of CPU; in batches of 8, 11 µs a record, of 32, 6).
    Records that Redis refuses are lost (logged), and so are those past `limit` waiting; the
    answers never wait or fail."""

    def __init__(self, store: FeedbackStore, limit: int = 10_000, linger: float = _LINGER) -> None:
        self._store = store
        self._limit = limit
        self._linger = linger
        self._queue: deque[tuple[str, Answer]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._dropped = 0

    def add(self, answer_id: str, answer: Answer) -> None:
        if len(self._queue) >= self._limit:
            self._dropped += 1
            return
        self._queue.append((answer_id, answer))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="answers' records")

    async def _write(self) -> None:
        queue = self._queue
        try:
            await asyncio.sleep(self._linger)
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                try:
                    await self._store.remember(batch)
                except StateUnavailable as exc:
                    log.info("%d answers cannot be rated: %s", len(batch), exc.message)
            if self._dropped:
                log.warning("%d answers cannot be rated: too many waited for Redis", self._dropped)
                self._dropped = 0
        finally:
            self._writer = None

    async def aclose(self, within: float = 5.0) -> None:
        """Write what is queued, waiting at most `within` seconds."""
        if self._writer is not None:
            try:
                await asyncio.wait_for(self._writer, within)
            except TimeoutError:
                log.warning("%d answers' records not written at shutdown", len(self._queue))


def _model_index(model: str) -> str:
    return "feedback:index:model:" + model


def _pipeline_index(pipeline: str) -> str:
    return "feedback:index:pipeline:" + pipeline


def _tallies(fields: dict[bytes, bytes]) -> dict[str, Tally]:
    counts: dict[str, dict[str, int]] = {}
    for field, count in fields.items():
        side, _, name = field.decode().partition(":")
        counts.setdefault(name, {})[side] = int(count)
    tallies = {name: Tally(c.get("up", 0), c.get("down", 0)) for name, c in counts.items()}
    return {name: tally for name, tally in sorted(tallies.items()) if tally.up or tally.down}
