"""The session store against a real Redis: layout, atomic turns, ownership, TTL, trimming only
what the summary covers, and a 503 when Redis is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.errors import StateUnavailable
from app.state.redis import connect
from app.state.sessions import TOTALS_KEY, SessionStore, TurnRecord, aggregate

TTL = 3600.0


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url, 2.0)
    yield client
    await client.aclose()


def record(n: int, tools: list[dict[str, Any]] | None = None) -> TurnRecord:
    metric = {
        "ttft_ms": 10.0 * n,
        "total_ms": 20.0 * n,
        "tool_calls": tools or [],
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    messages = [
        {"role": "user", "content": f"question {n}"},
        {"role": "assistant", "content": f"answer {n}"},
    ]
    totals = {"turns": 1, "messages": 2, "prompt_tokens": 10, "completion_tokens": 5}
    return TurnRecord(messages, metric, totals)


def contents(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages]


async def test_a_turn_creates_the_session_and_appends(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=200)
    assert await store.load("s1") == (None, [])
    assert await store.append_turn("s1", "alice", record(1)) == 2
    assert await store.append_turn("s1", "alice", record(2)) == 4
    session, unfolded = await store.load("s1")
    assert session is not None
    assert (session.id, session.user_id, session.summary) == ("s1", "alice", "")
    assert (session.message_count, session.folded) == (4, 0)
    assert session.created_at <= session.updated_at
    assert contents(unfolded) == ["question 1", "answer 1", "question 2", "answer 2"]
    assert await store.get("s1") == session
    assert session.public() == {
        "id": "s1",
        "object": "session",
        "user_id": "alice",
        "summary": "",
        "message_count": 4,
        "created_at": int(session.created_at),
        "updated_at": int(session.updated_at),
    }
    assert contents(await store.messages("s1", 3)) == ["answer 1", "question 2", "answer 2"]
    assert [m["ttft_ms"] for m in await store.metrics("s1")] == [10.0, 20.0]
    assert await store.totals() == {
        "sessions": 1,
        "turns": 2,
        "messages": 4,
        "prompt_tokens": 20,
        "completion_tokens": 10,
    }


async def test_another_users_session_is_left_alone(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=200)
    await store.append_turn("s1", "alice", record(1))
    assert await store.append_turn("s1", "bob", record(2)) is None
    session, unfolded = await store.load("s1")
    assert session is not None
    assert session.user_id == "alice"
    assert session.message_count == 2
    assert contents(unfolded) == ["question 1", "answer 1"]
    assert len(await store.metrics("s1")) == 1
    assert await store.for_user("bob", 10) == []


async def test_every_key_of_the_session_gets_the_ttl(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=100.0, max_messages=200)
    await store.append_turn("s1", "alice", record(1))
    keys = ["session:s1", "session:s1:messages", "session:s1:metrics", "user-sessions:alice"]
    for key in keys:
        assert 99_000 < await redis.pttl(key) <= 100_000, key
    await redis.pexpire("session:s1", 5000)
    await store.append_turn("s1", "alice", record(2))
    assert await redis.pttl("session:s1") > 99_000
    assert await redis.ttl(TOTALS_KEY) == -1


async def test_sessions_expire(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=0.2, max_messages=200)
    await store.append_turn("s1", "alice", record(1))
    await asyncio.sleep(0.4)
    assert await store.get("s1") is None
    assert await store.for_user("alice", 10) == []


async def test_listing_is_newest_first_and_forgets_expired_ids(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=200)
    for session_id in ("a", "b", "c"):
        await store.append_turn(session_id, "alice", record(1))
    await store.append_turn("a", "alice", record(2))
    assert [s.id for s in await store.for_user("alice", 10)] == ["a", "c", "b"]
    assert [s.id for s in await store.for_user("alice", 2)] == ["a", "c"]
    await redis.delete("session:c")  # as if it had expired
    assert [s.id for s in await store.for_user("alice", 10)] == ["a", "b"]
    assert await redis.zscore("user-sessions:alice", "c") is None


async def test_trimming_never_drops_what_the_summary_does_not_cover(
    redis: aioredis.Redis,
) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=4)
    for n in range(1, 4):
        await store.append_turn("s1", "alice", record(n))
    assert len(await store.messages("s1", 100)) == 6  # nothing folded yet: all kept
    assert await store.save_summary("s1", "turns 1-2", was=0, now=4)
    assert contents(await store.messages("s1", 100)) == [
        "question 2",
        "answer 2",
        "question 3",
        "answer 3",
    ]
    session, unfolded = await store.load("s1")
    assert session is not None
    assert (session.summary, session.folded) == ("turns 1-2", 4)
    assert contents(unfolded) == ["question 3", "answer 3"]
    await store.append_turn("s1", "alice", record(4))
    assert contents(await store.messages("s1", 100)) == [
        "question 3",
        "answer 3",
        "question 4",
        "answer 4",
    ]
    assert (await store.totals())["folds"] == 1


async def test_a_message_by_its_position_in_the_whole_session(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=4)
    assert await store.message_at("s1", 0) is None
    for n in range(1, 4):
        await store.append_turn("s1", "alice", record(n))
    assert [(await store.message_at("s1", i) or {}).get("content") for i in (0, 3, 5)] == [
        "question 1",
        "answer 2",
        "answer 3",
    ]
    assert await store.message_at("s1", 6) is None
    assert await store.save_summary("s1", "turns 1-2", was=0, now=4)  # trims turn 1 away
    assert await store.message_at("s1", 1) is None
    assert (await store.message_at("s1", 3) or {}).get("content") == "answer 2"
    await store.append_turn("s1", "alice", record(4))  # and now turn 2: positions stay
    assert await store.message_at("s1", 3) is None
    assert (await store.message_at("s1", 5) or {}).get("content") == "answer 3"
    assert (await store.message_at("s1", 7) or {}).get("content") == "answer 4"


async def test_a_summary_is_saved_only_over_the_one_it_replaces(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=200)
    await store.append_turn("s1", "alice", record(1))
    await store.append_turn("s1", "alice", record(2))
    assert await store.save_summary("s1", "first", was=0, now=2)
    assert not await store.save_summary("s1", "stale", was=0, now=4)
    assert not await store.save_summary("gone", "orphan", was=0, now=2)
    assert await redis.exists("session:gone") == 0
    session = await store.get("s1")
    assert session is not None
    assert (session.summary, session.folded) == ("first", 2)


async def test_delete_removes_every_key(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=200)
    await store.append_turn("s1", "alice", record(1))
    await store.append_turn("s2", "alice", record(1))
    session = await store.get("s1")
    assert session is not None
    await store.delete(session)
    assert await redis.exists("session:s1", "session:s1:messages", "session:s1:metrics") == 0
    assert [s.id for s in await store.for_user("alice", 10)] == ["s2"]


async def test_one_fold_at_a_time(redis: aioredis.Redis) -> None:
    store = SessionStore(redis, ttl=TTL, max_messages=200)
    async with store.folding("s1", 10) as first:
        async with store.folding("s1", 10) as second:
            assert (first, second) == (True, False)
        async with store.folding("s2", 10) as other:
            assert other
    async with store.folding("s1", 10) as again:
        assert again


async def test_redis_gone_is_a_503(tmp_path: Path) -> None:
    client = connect(f"unix://{tmp_path}/nothing.sock", 0.5)
    store = SessionStore(client, ttl=TTL, max_messages=200)
    try:
        for call in (
            store.load("s1"),
            store.append_turn("s1", "alice", record(1)),
            store.for_user("alice", 10),
            store.message_at("s1", 1),
            store.totals(),
        ):
            with pytest.raises(StateUnavailable) as caught:
                await call
            assert caught.value.status == 503
            assert caught.value.code == "state_unavailable"
            assert "Redis" in caught.value.message
    finally:
        await client.aclose()


def test_aggregate_metrics() -> None:
    calls = [
        {"name": "calculator", "ok": True, "duration_ms": 2.0},
        {"name": "web_search", "ok": False, "duration_ms": 40.0},
    ]
    turns = [record(1).metric, record(2, calls).metric, record(3).metric]
    figures = aggregate(turns)
    assert figures["turns"] == 3
    assert figures["ttft_ms"] == {"avg": 20.0, "p50": 20.0, "p95": 30.0, "max": 30.0}
    assert figures["total_ms"]["avg"] == 40.0
    assert figures["tool_calls"]["count"] == 2
    assert figures["tool_calls"]["failed"] == 1
    assert figures["tool_calls"]["latency_ms"]["max"] == 40.0
    assert figures["tool_calls"]["by_tool"]["calculator"]["count"] == 1
    assert figures["tokens"] == {"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45}
    assert figures["last"] == turns[-1]
    empty = aggregate([])
    assert empty["turns"] == 0
    assert empty["ttft_ms"]["avg"] is None
    assert empty["last"] is None
