"""Folding old turns into the summary: a real Router against the fake upstream, a real Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from app.chat.context import ESTIMATE
from app.chat.summary import (
    FOLD_PROMPT,
    SUMMARY_SHARE,
    Background,
    Folder,
    compose,
    transcript,
    usable,
)
from app.providers.factory import build_providers
from app.providers.router import Router
from app.state.redis import connect
from app.state.sessions import SessionStore, TurnRecord
from tests.conftest import gateway_settings
from tests.fakes.openai_upstream import OpenAIUpstreamState

MODEL = "openai/gpt-test"
MakeFolder = Callable[..., tuple[Folder, SessionStore]]


@pytest.fixture
async def make_folder(
    openai_server: tuple[str, OpenAIUpstreamState], upstream: OpenAIUpstreamState, redis_url: str
) -> AsyncIterator[MakeFolder]:
    url, _ = openai_server
    redis = connect(redis_url, 2.0)
    background = Background()
    async with aiohttp.ClientSession() as http:

        def make(**overrides: Any) -> tuple[Folder, SessionStore]:
            settings = gateway_settings(
                openai_base_url=f"{url}/v1", openai_api_key="upstream-key", **overrides
            )
            providers, _ = build_providers(settings.providers, http)
            store = SessionStore(redis, ttl=3600, max_messages=settings.state.max_session_messages)
            router = Router(providers, settings.providers)
            folder = Folder(
                router,
                store,
                background,
                token_budget=settings.state.token_budget,
                timeout=settings.providers.total_timeout,
            )
            return folder, store

        yield make
        await background.aclose()
    await redis.aclose()


def said(user: str, assistant: str) -> TurnRecord:
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return TurnRecord(messages, {"ttft_ms": 1.0, "total_ms": 2.0}, {"turns": 1})


def fold_requests(upstream: OpenAIUpstreamState) -> list[dict[str, Any]]:
    return [
        r for r in upstream.requests if r["messages"][0]["content"].startswith(FOLD_PROMPT[:40])
    ]


async def test_the_oldest_turns_are_folded_with_the_model(
    make_folder: MakeFolder, upstream: OpenAIUpstreamState
) -> None:
    folder, store = make_folder(token_budget=3000)
    await store.append_turn("s1", "alice", said("echo: My name is Alice", "My name is Alice"))
    await store.append_turn("s1", "alice", said("echo: I like tea", "I like tea"))
    await folder.fold("s1", MODEL, upto=2)
    (request,) = fold_requests(upstream)
    share = 3000 // SUMMARY_SHARE
    assert request["model"] == "gpt-test"
    assert request["max_tokens"] == share
    assert request["messages"] == [
        {"role": "system", "content": FOLD_PROMPT.format(words=share * 3 // 4)},
        {
            "role": "user",
            "content": "Summary so far:\n(none yet)\n\nNew turns:\n"
            "User: echo: My name is Alice\nAssistant: My name is Alice",
        },
    ]
    session, unfolded = await store.load("s1")
    assert session is not None
    assert session.folded == 2
    assert "Alice" in session.summary  # the fake echoes the turns it was given
    assert [m["content"] for m in unfolded] == ["echo: I like tea", "I like tea"]


async def test_folding_is_incremental(
    make_folder: MakeFolder, upstream: OpenAIUpstreamState
) -> None:
    folder, store = make_folder()
    for n in range(3):
        await store.append_turn("s1", "alice", said(f"echo: fact {n}", f"fact {n}"))
    await folder.fold("s1", MODEL, upto=2)
    first = await store.get("s1")
    assert first is not None
    await folder.fold("s1", MODEL, upto=6)
    _, second = fold_requests(upstream)
    prompt = second["messages"][1]["content"]
    assert prompt.startswith(f"Summary so far:\n{first.summary}\n\nNew turns:\n")
    assert "fact 0" not in prompt.partition("New turns:")[2]
    assert "User: echo: fact 1\nAssistant: fact 1\nUser: echo: fact 2" in prompt
    session = await store.get("s1")
    assert session is not None
    assert session.folded == 6


async def test_a_long_backlog_is_folded_in_batches(
    make_folder: MakeFolder, upstream: OpenAIUpstreamState
) -> None:
    folder, store = make_folder(token_budget=256)
    for n in range(3):
        await store.append_turn("s1", "alice", said(f"echo: {n} " + "word " * 150, "ok"))
    await folder.fold("s1", MODEL, upto=6)
    assert len(fold_requests(upstream)) == 3
    session = await store.get("s1")
    assert session is not None
    assert session.folded == 6
    assert (await store.totals())["folds"] == 3


async def test_a_fold_under_way_is_not_doubled(
    make_folder: MakeFolder, upstream: OpenAIUpstreamState
) -> None:
    folder, store = make_folder()
    await store.append_turn("s1", "alice", said("echo: a", "a"))
    async with store.folding("s1", 10):
        await folder.fold("s1", MODEL, upto=2)
    assert fold_requests(upstream) == []
    assert (await store.get("s1")) is not None


async def test_a_failing_model_changes_nothing(
    make_folder: MakeFolder, upstream: OpenAIUpstreamState, caplog: pytest.LogCaptureFixture
) -> None:
    folder, store = make_folder()
    await store.append_turn("s1", "alice", said("echo: a", "a"))
    with caplog.at_level(logging.WARNING, logger="app.chat.summary"):
        await folder.fold("s1", "openai/error-500", upto=2)
    session = await store.get("s1")
    assert session is not None
    assert (session.summary, session.folded) == ("", 0)
    assert "folding into the summary failed" in caplog.text
    async with store.folding("s1", 10) as free:
        assert free  # the lock was released


async def test_scheduled_folds_run_in_the_background(make_folder: MakeFolder) -> None:
    folder, store = make_folder()
    await store.append_turn("s1", "alice", said("echo: Alice", "Alice"))
    folder.schedule("s1", MODEL, upto=2)
    for _ in range(200):
        session = await store.get("s1")
        if session is not None and session.folded == 2:
            break
        await asyncio.sleep(0.01)
    assert session is not None
    assert "Alice" in session.summary


async def test_background_runs_one_task_per_key_and_cancels_at_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    background = Background()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def broken() -> None:
        raise RuntimeError("boom")

    assert background.start("a", forever)
    assert not background.start("a", forever)
    assert background.start("b", broken)
    await started.wait()
    await asyncio.sleep(0)
    assert "background task b failed" in caplog.text
    assert background.start("b", broken)  # the finished one left its slot
    await background.aclose()
    assert cancelled.is_set()


def test_transcript() -> None:
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert transcript("  ", turns) == (
        "Summary so far:\n(none yet)\n\nNew turns:\nUser: hi\nAssistant: hello"
    )
    assert transcript("Known.", turns[:1]).startswith("Summary so far:\nKnown.\n\n")


def test_a_summary_that_repeats_the_instructions_or_itself_is_not_used() -> None:
    assert usable("Alice likes green tea.\nShe asked about Paris.")
    assert not usable("")
    assert not usable(f"Sure. {FOLD_PROMPT}")
    assert not usable("You are a helpful assistant.\nYou are a helpful assistant.")


TURNS = [
    {"role": "user", "content": "My name is   Alice."},
    {"role": "assistant", "content": "Hello Alice!"},
    {"role": "user", "content": "I like green tea. " * 40},
]


def test_the_summary_keeps_the_users_words_after_the_models_prose() -> None:
    text = compose("Alice introduced herself.", "", TURNS[:2], 60, ESTIMATE.count)
    assert text == "Alice introduced herself.\nThe user said: My name is Alice."


def test_junk_prose_is_dropped_and_the_oldest_words_are_kept_across_folds() -> None:
    first = compose("x\nx", "", TURNS, 30, ESTIMATE.count)
    assert first == "The user said: My name is Alice."
    second = compose(
        "A chat.", first, [{"role": "user", "content": "I live in Oslo."}], 60, ESTIMATE.count
    )
    assert second == "A chat.\nThe user said: My name is Alice.\nThe user said: I live in Oslo."


def test_long_prose_takes_at_most_half_the_room() -> None:
    prose = "Alice talked about many things at length. " * 30
    text = compose(prose, "", TURNS[:2], 80, ESTIMATE.count)
    assert text.endswith("The user said: My name is Alice.")
    assert ESTIMATE.count(text.split("\nThe user said:")[0]) <= 40
