"""The response cache keeps a turn's events: a hit replays on every wire exactly as the miss it
repeats (a fresh id and time aside), and only a complete answer is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from app.chat.events import Event, Finish, Text, ToolFinished, Waiting
from app.chat.replay import play, replayed, store
from app.chat.turn import Turn
from app.config import load_settings
from app.errors import UpstreamError
from app.state.cache import Caches, ResponseCache
from app.tools.registry import ToolOutcome
from tests.api.wire.golden import WIRES, fixed_turn
from tests.chat.test_events import TURN

KEY = "cache:llm:test"


@pytest.fixture
async def llm(redis_url: str) -> AsyncIterator[ResponseCache]:
    redis = aioredis.Redis.from_url(redis_url)
    yield Caches.open(redis, load_settings(_env_file=None).state).llm
    await redis.aclose()


def no_ttl(name: str) -> float:
    return 3600.0


async def drain(turn: Turn) -> list[Event]:
    return [event async for event in turn.events()]


@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_a_hit_replays_on_every_wire_as_the_miss(llm: ResponseCache, wire: str) -> None:
    """Keep-alives depend on timing and are not stored; an answer whose tool failed is not
    stored at all: both are left out of the fixed turn here."""
    events: list[Event] = [
        event
        for event in TURN
        if not isinstance(event, Waiting)
        and not (isinstance(event, ToolFinished) and not event.outcome.ok)
    ]
    miss = fixed_turn(events)
    store(miss, llm, KEY, no_ttl)
    sent = await WIRES[wire](miss)
    record = await llm.get(KEY)
    assert record is not None
    hit = replayed(record)
    assert hit is not None
    assert hit.cache == "hit"
    assert hit.id != miss.id
    hit.id, hit.created = miss.id, miss.created
    hit.session_id, hit.user_id = miss.session_id, miss.user_id
    assert await WIRES[wire](hit) == sent


async def _events(events: list[Event], fail: bool = False) -> AsyncIterator[Event]:
    for event in events:
        yield event
    if fail:
        raise UpstreamError("openai", "cut")


ANSWER: list[Event] = [Text("Hi"), Text("!"), Finish("stop")]


async def test_only_a_complete_answer_is_stored(llm: ResponseCache, redis_url: str) -> None:
    complete = Turn("openai/m", _events(ANSWER))
    store(complete, llm, "cache:llm:a", no_ttl)
    assert await drain(complete) == ANSWER

    failed = Turn("openai/m", _events(ANSWER, fail=True))
    store(failed, llm, "cache:llm:b", no_ttl)
    with pytest.raises(UpstreamError):
        await drain(failed)
    unfinished = Turn("openai/m", _events(ANSWER[:2]))
    store(unfinished, llm, "cache:llm:c", no_ttl)
    await drain(unfinished)
    left = Turn("openai/m", _events(ANSWER))
    store(left, llm, "cache:llm:d", no_ttl)
    events = left.events()
    await anext(events)
    await events.aclose()  # the client left

    redis = aioredis.Redis.from_url(redis_url)
    assert await redis.keys("cache:llm:*") == [b"cache:llm:a"]
    await redis.aclose()


@pytest.mark.parametrize(
    ("ok", "ttl", "kept"), [(True, 60.0, True), (False, 60.0, False), (True, 0.0, False)]
)
async def test_an_answer_lives_no_longer_than_its_tools(
    llm: ResponseCache, redis_url: str, ok: bool, ttl: float, kept: bool
) -> None:
    used = ToolFinished("call_1", ToolOutcome("count", {}, ok, "1", 0.1))
    turn = Turn("openai/m", _events([used, *ANSWER]))
    store(turn, llm, KEY, lambda name: ttl)
    await drain(turn)
    redis = aioredis.Redis.from_url(redis_url)
    pttl = await redis.pttl(KEY)
    await redis.aclose()
    assert (0 < pttl <= 60_000) if kept else pttl == -2


def test_a_record_of_an_older_version_is_a_miss() -> None:
    assert replayed({"object": "chat.completion", "choices": []}) is None
    assert replayed({"version": 2, "model": "m", "lists_tools": False, "events": [{}]}) is None
    turn = replayed({"version": 2, "model": "m", "lists_tools": True, "events": []})
    assert turn is not None
    assert (turn.model, turn.lists_tools) == ("m", True)


async def test_play_gives_the_events_in_order() -> None:
    assert [event async for event in play(ANSWER)] == ANSWER
