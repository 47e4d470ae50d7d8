"""The caches against the real Redis of the test run (REDIS_URL), and a Redis that is gone."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from app.config import load_settings
from app.errors import ToolError
from app.state import cache as cache_module
from app.state.cache import STATS_KEY, Caches, invalidate, stats
from app.state.redis import connect
from app.state.redis import probe as ping
from app.tools.registry import ToolRegistry

CALLS: list[dict[str, Any]] = []


async def lookup(city: str, days: int = 1) -> dict[str, Any]:
    """Looks a city up."""
    CALLS.append({"city": city, "days": days})
    return {"city": city, "days": days}


async def failing(city: str) -> str:
    """Always fails."""
    CALLS.append({"city": city})
    raise ToolError("down")


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


def caches_for(redis: aioredis.Redis, **settings: Any) -> Caches:
    return Caches.open(redis, load_settings(_env_file=None, **settings).state)


# --- what is cacheable, and under which key ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "choices", "wanted"),
    [
        ({"temperature": 0}, 1, True),
        ({"temperature": 0.0}, 1, True),
        ({"temperature": 0.7}, 1, False),
        ({}, 1, False),
        ({"temperature": 0.7, "cache": True}, 1, True),
        ({"cache": True}, 1, True),
        ({"temperature": 0, "cache": False}, 1, False),
        ({"temperature": 0, "cache": "yes"}, 1, True),
        ({"temperature": 0}, 2, False),
        ({"cache": True}, 3, False),
    ],
)
async def test_what_is_cacheable(
    client: aioredis.Redis, body: dict[str, Any], choices: int, wanted: bool
) -> None:
    assert caches_for(client).llm.wants(body, choices) is wanted


async def test_nothing_is_cacheable_with_a_zero_ttl(client: aioredis.Redis) -> None:
    llm = caches_for(client, llm_cache_ttl=0).llm
    assert not llm.wants({"temperature": 0, "cache": True}, 1)


async def test_the_key_ignores_what_does_not_change_the_answer(client: aioredis.Redis) -> None:
    llm = caches_for(client).llm
    messages = [{"role": "user", "content": "hi"}]
    base = llm.key({"messages": messages, "temperature": 0}, "openai/m", ())
    assert base.startswith("cache:llm:")
    same = [
        {"messages": messages, "temperature": 0.0},
        {"messages": messages, "temperature": 0, "stream": True, "stream_options": {"x": 1}},
        {"messages": messages, "temperature": 0, "user": "u1", "cache": True, "n": 1},
        {"temperature": 0, "messages": messages, "model": "alias", "top_p": None},
    ]
    for body in same:
        assert llm.key(body, "openai/m", ()) == base, body
    different = [
        ({"messages": [{"role": "user", "content": "ho"}], "temperature": 0}, "openai/m", ()),
        ({"messages": messages, "temperature": 0}, "openai/other", ()),
        ({"messages": messages, "temperature": 0, "max_tokens": 5}, "openai/m", ()),
        ({"messages": messages, "temperature": 0, "seed": 1}, "openai/m", ()),
        ({"messages": messages, "temperature": 0, "tools": [{"a": 1}]}, "openai/m", ()),
        ({"messages": messages, "temperature": 0, "some_new_field": 1}, "openai/m", ()),
        ({"messages": messages, "temperature": 0}, "openai/m", ("calculator",)),
    ]
    keys = {llm.key(*args) for args in different}
    assert base not in keys
    assert len(keys) == len(different)
    assert llm.key({"messages": messages}, "m", ["b", "a"]) == llm.key(
        {"messages": messages}, "m", ["a", "b"]
    )


STORED = {
    "version": 2,
    "model": "openai/m",
    "lists_tools": False,
    "events": [{"kind": "Text", "text": "An answer of some length. " * 12, "choice": 0}],
}
"""A stored answer, as the engine stores one."""


# --- responses ----------------------------------------------------------------------------------


async def test_a_response_is_stored_with_its_ttl_and_counted(client: aioredis.Redis) -> None:
    llm = caches_for(client, llm_cache_ttl=120).llm
    key = llm.key({"messages": [], "temperature": 0}, "openai/m", ())
    assert await llm.get(key) is None
    await llm.put(key, {"object": "chat.completion", "choices": []})
    assert await llm.get(key) == {"object": "chat.completion", "choices": []}
    assert 119_000 < await client.pttl(key) <= 120_000
    assert await client.hgetall(STATS_KEY) == {b"llm:hits": b"1", b"llm:misses": b"1"}


# --- tools ----------------------------------------------------------------------------------------


def registry(caches: Caches) -> ToolRegistry:
    tools = ToolRegistry(timeout=5, result_max_chars=1000, cache=caches.tools)
    tools.register(lookup)
    tools.register(failing)
    tools.register(lookup, name="uncached")
    tools.enable(None)
    return tools


async def test_tool_results_are_cached_per_tool_and_arguments(client: aioredis.Redis) -> None:
    CALLS.clear()
    caches = caches_for(client, tool_cache_ttl=["lookup=60", "failing=60", "uncached=0"])
    tools = registry(caches)
    assert await tools.run("lookup", '{"city": "Paris", "days": 1}') == {"city": "Paris", "days": 1}
    assert await tools.run("lookup", {"days": 1, "city": "Paris"}) == {"city": "Paris", "days": 1}
    assert await tools.run("lookup", {"city": "Paris"}) == {"city": "Paris", "days": 1}
    assert len(CALLS) == 1, "defaults and argument order make no difference"
    await tools.run("lookup", {"city": "Rome"})
    await tools.run("uncached", {"city": "Paris"})
    await tools.run("uncached", {"city": "Paris"})
    assert len(CALLS) == 4
    for _ in range(2):
        outcome = await tools.call("failing", {"city": "Paris"})
        assert not outcome.ok
    assert len(CALLS) == 6, "failures are not cached"
    # The client decodes nothing (no decode_responses), so Redis answers bytes; the stubs say
    # bytes | str for either kind of client.
    keys = cast(list[bytes], await client.keys("cache:tool:*"))
    assert len(keys) == 2
    for key in keys:
        assert key.startswith(b"cache:tool:lookup:")
        assert 59_000 < await client.pttl(key) <= 60_000
    counters = await client.hgetall(STATS_KEY)
    assert counters == {b"tools:hits": b"2", b"tools:misses": b"4"}


async def test_a_tool_not_named_in_the_ttls_never_touches_redis(client: aioredis.Redis) -> None:
    CALLS.clear()
    tools = registry(caches_for(client, tool_cache_ttl=["other=60"]))
    await tools.run("lookup", {"city": "Paris"})
    await tools.run("lookup", {"city": "Paris"})
    assert len(CALLS) == 2
    assert await client.dbsize() == 0


# --- intent -------------------------------------------------------------------------------------


async def test_intent_decisions_are_cached_including_no_tool(client: aioredis.Redis) -> None:
    intent = caches_for(client).intent
    enabled = ["calculator", "time"]
    assert await intent.get("double ninety", enabled, "openai/m") is None
    found = {"name": "calculator", "arguments": {"x": "90*2"}}
    await intent.put(" double ninety ", enabled, "openai/m", found)
    await intent.put("tell a joke", enabled, "openai/m", None)
    hit = await intent.get("double ninety", list(reversed(enabled)), "openai/m")
    assert hit is not None
    assert hit.value == found
    none = await intent.get("tell a joke", enabled, "openai/m")
    assert none is not None
    assert none.value is None
    assert await intent.get("double ninety", ["calculator"], "openai/m") is None
    assert await intent.get("double ninety", enabled, "openai/other") is None


async def test_no_intent_cache_with_a_zero_ttl(client: aioredis.Redis) -> None:
    intent = caches_for(client, llm_cache_ttl=0).intent
    await intent.put("x", [], "m", None)
    assert await intent.get("x", [], "m") is None
    assert await client.dbsize() == 0


# --- stats and invalidation ---------------------------------------------------------------------


async def test_stats_count_keys_and_memory_per_cache(client: aioredis.Redis) -> None:
    caches = caches_for(client, tool_cache_ttl=["lookup=60"])
    for i in range(3):
        await caches.llm.put(f"cache:llm:{i}", STORED)
    await caches.llm.get("cache:llm:0")
    await caches.llm.get("cache:llm:nope")
    await caches.tools.put("lookup", {"city": "Paris"}, {"x": 1})
    await client.set("unrelated", b"x")
    report = await stats(client)
    assert set(report) == {"llm", "tools", "intent"}
    llm = report["llm"]
    assert (llm["hits"], llm["misses"], llm["hit_rate"], llm["keys"]) == (1, 1, 0.5, 3)
    assert llm["memory_bytes"] > 3 * 200
    assert not llm["keys_capped"]
    assert not llm["memory_sampled"]
    assert report["tools"]["keys"] == 1
    assert report["intent"] == {
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
        "keys": 0,
        "keys_capped": False,
        "memory_bytes": 0,
        "memory_sampled": False,
    }


async def test_large_caches_are_sampled_and_capped(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.mset({f"cache:llm:{i}": b"x" * 100 for i in range(50)})
    monkeypatch.setattr(cache_module, "_MEMORY_SAMPLE", 5)
    report = (await stats(client))["llm"]
    assert report["keys"] == 50
    assert report["memory_sampled"]
    assert 50 * 100 < report["memory_bytes"] < 50 * 300
    monkeypatch.setattr(cache_module, "_SCAN_COUNT", 10)
    monkeypatch.setattr(cache_module, "_KEYS_LIMIT", 20)
    report = (await stats(client))["llm"]
    assert report["keys_capped"]
    assert 20 <= report["keys"] < 50


async def test_invalidation_removes_one_cache_in_batches(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "_UNLINK_BATCH", 7)
    await client.mset({f"cache:llm:{i}": b"x" for i in range(30)})
    await client.mset({f"cache:tool:t:{i}": b"x" for i in range(3)})
    await client.mset({"cache:intent:a": b"x", "session:1": b"x"})
    await client.hset(STATS_KEY, "llm:hits", 4)
    assert await invalidate(client, "llm") == 30
    assert await invalidate(client, "llm") == 0
    assert await invalidate(client, "tools") == 3
    assert await invalidate(client, "intent") == 1
    assert sorted(await client.keys("*")) == [STATS_KEY.encode(), b"session:1"]


# --- Redis gone -----------------------------------------------------------------------------------


async def test_a_redis_that_is_gone_is_bypassed_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = connect(f"unix://{tmp_path}/nobody.sock", timeout=1.0)
    caches = caches_for(gone, tool_cache_ttl=["lookup=60"])
    with caplog.at_level(logging.WARNING, logger="app.state.cache"):
        assert await caches.llm.get("cache:llm:x") is None
        assert not caches.llm.available
        await caches.llm.put("cache:llm:x", STORED)
        assert await caches.tools.get("lookup", {"city": "Paris"}) is None
        monkeypatch.setattr(cache_module, "_RETRY_AFTER", 0.0)
        assert await caches.intent.get("x", [], "m") is None
        await caches.tools.put("lookup", {"city": "Paris"}, {"x": 1})
    assert len([r for r in caplog.records if "caches bypassed" in r.message]) == 1
    probe = await ping(gone)
    assert probe["status"] == "down"
    await gone.aclose()


async def test_ping(client: aioredis.Redis) -> None:
    probe = await ping(client)
    assert probe["status"] == "up"
    assert probe["latency_ms"] < 1000
