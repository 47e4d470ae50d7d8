"""The feedback store against a real Redis: answers' records by any wire's id and their TTL, a
rating replaced rather than counted twice, the totals as they stand, listing newest first with
filters and pages, an owner's ratings and answers forgotten whole (ratings given before the
owners' sets too, and ratings given meanwhile), and a 503 when Redis is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from app.errors import StateUnavailable
from app.state.feedback import (
    Answer,
    Feedback,
    FeedbackStore,
    Rating,
    Recorder,
    Tally,
    Withdrawn,
    pipeline_of,
)
from app.state.redis import connect

TTL = 3600.0


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url, 2.0)
    yield client
    await client.aclose()


def rating(
    answer: Answer,
    value: Rating,
    *,
    owner: str = "alice",
    message_id: str | None = None,
    at: float = 1000.0,
    comment: str | None = None,
    **session: Any,
) -> Feedback:
    return Feedback(
        owner=owner,
        answer=answer,
        rating=value,
        comment=comment,
        created_at=at,
        message_id=message_id,
        **session,
    )


def test_a_pipelines_answer_is_known_by_its_model() -> None:
    assert pipeline_of("pipeline/agents") == "agents"
    assert pipeline_of("openai/gpt-4o") is None
    answer = Answer.of("pipeline/research", ["web_search", "fetch_url"], "alice")
    assert (answer.pipeline, answer.tools) == ("research", ("web_search", "fetch_url"))


async def test_an_answer_is_found_by_any_of_its_wires_ids(redis: aioredis.Redis) -> None:
    store = FeedbackStore(redis, ttl=100.0)
    answer = Answer.of("openai/gpt-test", ["calculator"], "alice")
    await store.remember([("chatcmpl-0a1b2c", answer)])
    for seen in ("chatcmpl-0a1b2c", "msg_0a1b2c", "resp_0a1b2c", "cmpl-0a1b2c"):
        assert await store.answer(seen) == answer
    assert await store.answer("chatcmpl-ffffff") is None
    assert 99_000 < await redis.pttl("feedback:answer:0a1b2c") <= 100_000


async def test_an_answers_record_expires(redis: aioredis.Redis) -> None:
    store = FeedbackStore(redis, ttl=0.2)
    await store.remember([("chatcmpl-1", Answer.of("openai/m", [], "alice"))])
    await asyncio.sleep(0.4)
    assert await store.answer("chatcmpl-1") is None


async def test_a_burst_of_answers_is_recorded_on_one_connection(redis_url: str) -> None:
    client = connect(redis_url, 2.0)
    probe = connect(redis_url, 2.0)
    try:
        before = len(await probe.client_list())
        recorder = Recorder(FeedbackStore(client, ttl=TTL))
        answer = Answer.of("openai/m", ["calculator"], "alice")
        for n in range(1000):  # as many answers ending at once
            recorder.add(f"chatcmpl-{n:06x}", answer)
        await recorder.aclose()
        assert len(await probe.client_list()) <= before + 1
        assert len(await probe.keys("feedback:answer:*")) == 1000
        assert await FeedbackStore(probe, ttl=TTL).answer("msg_0003e7") == answer
    finally:
        await client.aclose()
        await probe.aclose()


async def test_records_past_the_limit_are_dropped(redis: aioredis.Redis) -> None:
    recorder = Recorder(FeedbackStore(redis, ttl=TTL), limit=10)
    for n in range(25):
        recorder.add(f"chatcmpl-{n}", Answer.of("openai/m", [], "alice"))
    await recorder.aclose()
    assert len(await redis.keys("feedback:answer:*")) == 10
    recorder.add("chatcmpl-late", Answer.of("openai/m", [], "alice"))  # drained: room again
    await recorder.aclose()
    assert await redis.exists("feedback:answer:late")


async def test_recording_without_redis_fails_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.state.feedback")
    client = connect(f"unix://{tmp_path}/nothing.sock", 0.2)
    recorder = Recorder(FeedbackStore(client, ttl=TTL))
    try:
        recorder.add("chatcmpl-1", Answer.of("openai/m", [], "alice"))
        await recorder.aclose()
    finally:
        await client.aclose()
    assert "1 answers cannot be rated" in caplog.text


async def test_a_second_rating_replaces_the_first(redis: aioredis.Redis) -> None:
    store = FeedbackStore(redis, ttl=TTL)
    answer = Answer.of("openai/m", [], "alice")
    first = rating(answer, 1, message_id="chatcmpl-1", at=1000.0)
    assert await store.rate(first) == 0
    assert await store.rate(first) == 1  # the same again: counted once
    assert await store.totals() == {"models": {"openai/m": Tally(up=1)}, "pipelines": {}}
    # the same answer by another of its ids, changed: it replaces, and the totals move
    changed = rating(answer, -1, message_id="msg_1", at=1001.0, comment="wrong")
    assert changed.id == first.id
    assert await store.rate(changed) == 1
    assert await store.totals() == {"models": {"openai/m": Tally(down=1)}, "pipelines": {}}
    page = await store.page()
    assert page is not None
    assert page.data == [changed]
    assert not page.has_more


async def test_each_user_rates_for_themselves(redis: aioredis.Redis) -> None:
    store = FeedbackStore(redis, ttl=TTL)
    answer = Answer.of("openai/m", [], "alice")
    alice = rating(answer, 1, message_id="chatcmpl-1")
    bob = rating(answer, -1, owner="bob", message_id="chatcmpl-1")
    assert alice.id != bob.id
    assert await store.rate(alice) == await store.rate(bob) == 0
    assert await store.totals() == {"models": {"openai/m": Tally(1, 1)}, "pipelines": {}}


async def test_a_session_message_is_rated_by_its_position(redis: aioredis.Redis) -> None:
    store = FeedbackStore(redis, ttl=TTL)
    answer = Answer.of("pipeline/agents", ["web_search"], "alice")
    one = rating(answer, 1, session_id="s1", index=1)
    three = rating(answer, 1, session_id="s1", index=3)
    assert one.id != three.id
    assert await store.rate(one) == 0
    assert await store.rate(three) == 0
    assert await store.rate(rating(answer, -1, session_id="s1", index=1)) == 1
    assert await store.totals() == {
        "models": {"pipeline/agents": Tally(1, 1)},
        "pipelines": {"agents": Tally(1, 1)},
    }
    assert Tally(1, 1).public() == {"up": 1, "down": 1, "count": 2, "positive_share": 0.5}
    assert Tally().public()["positive_share"] is None


async def test_listing_is_newest_first_filtered_and_paged(redis: aioredis.Redis) -> None:
    store = FeedbackStore(redis, ttl=TTL)
    plain = Answer.of("openai/a", [], "alice")
    other = Answer.of("openai/b", [], "alice")
    agents = Answer.of("pipeline/agents", [], "alice")
    given = [
        rating(plain, 1, message_id="chatcmpl-1", at=1.0),
        rating(other, -1, message_id="chatcmpl-2", at=2.0),
        rating(agents, 1, message_id="chatcmpl-3", at=3.0),
        rating(plain, -1, message_id="chatcmpl-4", at=4.0),
        rating(agents, -1, message_id="chatcmpl-5", at=5.0),
        rating(plain, 1, message_id="chatcmpl-6", at=6.0),
    ]
    for item in given:
        await store.rate(item)

    async def ids(**query: Any) -> list[str | None]:
        page = await store.page(**query)
        assert page is not None
        return [item.message_id for item in page.data]

    assert await ids() == [f"chatcmpl-{n}" for n in (6, 5, 4, 3, 2, 1)]
    assert await ids(model="openai/a") == ["chatcmpl-6", "chatcmpl-4", "chatcmpl-1"]
    assert await ids(pipeline="agents") == ["chatcmpl-5", "chatcmpl-3"]
    assert await ids(rating=-1) == ["chatcmpl-5", "chatcmpl-4", "chatcmpl-2"]
    assert await ids(model="openai/a", rating=1) == ["chatcmpl-6", "chatcmpl-1"]
    assert await ids(model="pipeline/agents", pipeline="agents", rating=1) == ["chatcmpl-3"]
    assert await ids(model="openai/a", pipeline="agents") == []
    assert await ids(model="nobody/none") == []

    first = await store.page(limit=4)
    assert first is not None
    assert first.has_more
    assert [i.message_id for i in first.data] == [f"chatcmpl-{n}" for n in (6, 5, 4, 3)]
    rest = await store.page(limit=4, after=first.data[-1].id)
    assert rest is not None
    assert not rest.has_more
    assert [i.message_id for i in rest.data] == ["chatcmpl-2", "chatcmpl-1"]
    filtered = await store.page(rating=1, limit=1)
    assert filtered is not None
    assert filtered.has_more
    after = await store.page(rating=1, limit=5, after=filtered.data[0].id)
    assert after is not None
    assert [i.message_id for i in after.data] == ["chatcmpl-3", "chatcmpl-1"]
    assert await store.page(after="fb_nothing") is None


async def test_redis_gone_is_a_503(tmp_path: Path) -> None:
    client = connect(f"unix://{tmp_path}/nothing.sock", 0.5)
    store = FeedbackStore(client, ttl=TTL)
    answer = Answer.of("openai/m", [], "alice")
    try:
        for call in (
            store.remember([("chatcmpl-1", answer)]),
            store.answer("chatcmpl-1"),
            store.rate(rating(answer, 1, message_id="chatcmpl-1")),
            store.page(),
            store.totals(),
            store.forget("alice"),
            store.count("alice"),
        ):
            with pytest.raises(StateUnavailable) as caught:
                await call
            assert caught.value.status == 503
            assert caught.value.code == "state_unavailable"
            assert "Redis" in caught.value.message
    finally:
        await client.aclose()


async def test_an_owners_answers_are_kept_in_their_set_until_they_expire(
    redis: aioredis.Redis,
) -> None:
    store = FeedbackStore(redis, ttl=0.3)
    alice = Answer.of("openai/m", [], "alice")
    await store.remember(
        [("chatcmpl-a1", alice), ("chatcmpl-b1", Answer.of("openai/m", [], "bob"))]
    )
    assert await redis.zrange("feedback:answers:alice", 0, -1) == [b"a1"]
    assert await redis.zrange("feedback:answers:bob", 0, -1) == [b"b1"]
    assert 0 < await redis.pttl("feedback:answers:alice") <= 300
    await asyncio.sleep(0.4)
    await store.remember([("chatcmpl-a2", alice)])  # the expired one is trimmed on the next write
    assert await redis.zrange("feedback:answers:alice", 0, -1) == [b"a2"]
    await asyncio.sleep(0.4)
    assert not await redis.exists("feedback:answers:alice", "feedback:answers:bob")


async def _given(store: FeedbackStore) -> list[Feedback]:
    """Ratings of alice and bob of plain and pipeline answers, their answers recorded."""
    plain = Answer.of("openai/m", [], "alice")
    agents = Answer.of("pipeline/agents", ["web_search"], "alice")
    bobs = Answer.of("openai/m", [], "bob")
    await store.remember([("chatcmpl-a1", plain), ("chatcmpl-a2", agents), ("chatcmpl-b1", bobs)])
    given = [
        rating(plain, 1, message_id="chatcmpl-a1", at=1.0, comment="spot on"),
        rating(agents, -1, message_id="chatcmpl-a2", at=2.0),
        rating(plain, -1, session_id="s1", index=1, at=3.0),
        rating(bobs, 1, owner="bob", message_id="chatcmpl-b1", at=4.0),
        rating(Answer.of("pipeline/agents", [], "bob"), 1, owner="bob", session_id="s2", index=3),
    ]
    for item in given:
        await store.rate(item)
    return given


async def test_forgetting_an_owner_deletes_their_ratings_indexes_totals_and_answers(
    redis: aioredis.Redis,
) -> None:
    store = FeedbackStore(redis, ttl=TTL)
    given = await _given(store)
    assert await store.count("alice") == 3
    forgotten = await store.forget("alice")
    assert sorted(forgotten.ratings, key=str) == sorted(
        [
            Withdrawn("openai/m", None, "up"),
            Withdrawn("pipeline/agents", "agents", "down"),
            Withdrawn("openai/m", None, "down"),
        ],
        key=str,
    )
    assert forgotten.answers == 2
    assert await store.totals() == {
        "models": {"openai/m": Tally(up=1), "pipeline/agents": Tally(up=1)},
        "pipelines": {"agents": Tally(up=1)},
    }
    page = await store.page()
    assert page is not None
    assert page.data == given[4:2:-1]
    bobs = {given[3].id.encode(), given[4].id.encode()}
    for index in (
        "feedback:index",
        "feedback:index:model:openai/m",
        "feedback:index:model:pipeline/agents",
        "feedback:index:pipeline:agents",
    ):
        assert set(await redis.zrange(index, 0, -1)) <= bobs, index
    for item in given[:3]:
        assert not await redis.exists("feedback:" + item.id)
    assert await store.answer("chatcmpl-a1") is None
    assert await store.answer("chatcmpl-a2") is None
    assert await store.answer("chatcmpl-b1") is not None
    assert not await redis.exists("feedback:user:alice", "feedback:answers:alice")
    assert await store.count("alice") == 0
    assert await store.count("bob") == 2
    again = await store.forget("alice")
    assert (again.ratings, again.answers) == ([], 0)


async def test_ratings_given_before_the_owners_sets_are_forgotten_too(
    redis: aioredis.Redis,
) -> None:
    store = FeedbackStore(redis, ttl=TTL)
    given = await _given(store)
    # as the gateway stored them before it kept each owner's set
    await redis.delete("feedback:user:alice", "feedback:user:bob")
    forgotten = await store.forget("alice")
    assert len(forgotten.ratings) == 3
    assert await redis.exists("feedback:users:indexed")
    assert await store.count("bob") == 2
    assert await store.totals() == {
        "models": {"openai/m": Tally(up=1), "pipeline/agents": Tally(up=1)},
        "pipelines": {"agents": Tally(up=1)},
    }
    # the ratings' index is read once: a set lost later is not rebuilt on each forget
    await redis.delete("feedback:user:bob")
    assert (await store.forget("bob")).ratings == []
    page = await store.page()
    assert page is not None
    assert page.data == given[4:2:-1]


async def test_ratings_given_while_an_owner_is_forgotten_leave_the_totals_right(
    redis_url: str,
) -> None:
    clients = [connect(redis_url, 2.0) for _ in range(4)]
    stores = [FeedbackStore(client, ttl=TTL) for client in clients]
    answers = [Answer.of(f"openai/m{n % 3}", [], "alice") for n in range(60)]
    agents = Answer.of("pipeline/agents", [], "alice")

    async def rate_all(store: FeedbackStore, values: list[Rating], owner: str) -> None:
        for n, value in enumerate(values):
            answer = agents if n % 4 == 0 else answers[n]
            await store.rate(rating(answer, value, owner=owner, message_id=f"chatcmpl-{n}"))

    try:
        for _ in range(5):
            await rate_all(stores[0], [1] * 60, "bob")
            raters = asyncio.gather(
                rate_all(stores[1], [1, -1] * 30, "alice"),
                rate_all(stores[2], [-1, 1] * 30, "alice"),
            )
            forgotten = 0
            while not raters.done():
                forgotten += len((await stores[3].forget("alice")).ratings)
            await raters
            assert forgotten
            page = await stores[0].page(limit=1000)
            assert page is not None
            counted: dict[str, dict[str, int]] = {"models": {}, "pipelines": {}}
            for item in page.data:
                side = "up" if item.rating == 1 else "down"
                for group, name in (
                    ("models", item.answer.model),
                    ("pipelines", item.answer.pipeline),
                ):
                    if name is not None:
                        key = f"{side}:{name}"
                        counted[group][key] = counted[group].get(key, 0) + 1
            for group in ("model", "pipeline"):
                stored = await clients[0].hgetall(f"feedback:totals:{group}")
                raw = cast("dict[bytes, bytes]", stored)
                standing = {k.decode(): int(v) for k, v in raw.items() if int(v)}
                assert standing == counted[group + "s"]
            assert await stores[0].count("alice") == sum(i.owner == "alice" for i in page.data)
            await stores[0].forget("alice")
            totals = await stores[0].totals()
            assert sum(t.up + t.down for t in totals["models"].values()) == 60
            assert totals["models"]["pipeline/agents"] == Tally(up=15)
    finally:
        for client in clients:
            await client.aclose()
