"""The intent classifier with the real embedding model and the real Redis: what each stage
decides, the conversation's intent kept, the cache, and the model asked through a real Router
against the fake upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from app.config import load_settings
from app.errors import UpstreamTimeout
from app.pipelines.classifier import Classifier, parse_intent
from app.pipelines.intents import IntentSet, load_intents
from app.providers.factory import build_providers
from app.providers.router import Router
from app.state.cache import Caches, IntentCache
from tests.conftest import gateway_settings
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.pipelines.conftest import SMALL, CountingEmbedder

Messages = list[dict[str, Any]]

CLEAR = "my parcel still hasn't come, where is it?"
"""Near the delivery examples, far from the others."""
MIXED = "I returned it and want my money, the courier took it last week"
"""Near delivery, refunds and billing alike."""
NAMES_NONE = "what about that one"
"""Below the floor of every intent."""
PAID = "I paid twice, please send me a receipt"
"""Clearly billing, less clearly than CLEAR is delivery."""


class Model:
    """A classifier model that answers from a list, recording what it was asked."""

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.asked: list[Messages] = []

    async def __call__(self, messages: Messages) -> str:
        self.asked.append(messages)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


def small(tmp_path: Path, **thresholds: float) -> IntentSet:
    """The small set, with some thresholds changed."""
    text = SMALL
    for name, value in thresholds.items():
        text = "\n".join(
            f"  {name}: {value}" if line.startswith(f"  {name}:") else line
            for line in text.splitlines()
        )
    path = tmp_path / f"intents-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(text)
    return load_intents(path)


def one_more(tmp_path: Path) -> IntentSet:
    """The small set with one more example."""
    path = tmp_path / "more.yaml"
    path.write_text(
        SMALL.replace(
            "      - How long does a refund take?\n",
            "      - How long does a refund take?\n      - Has my refund been sent yet?\n",
        )
    )
    return load_intents(path)


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[IntentCache]:
    redis = aioredis.Redis.from_url(redis_url)
    yield Caches.open(redis, load_settings(_env_file=None).state).intent
    await redis.aclose()


# --- the stages ---------------------------------------------------------------------------------


async def test_a_pattern_decides_first_and_nothing_is_embedded(
    small_file: Path, embedder: CountingEmbedder
) -> None:
    model = Model("billing")
    classifier = Classifier(load_intents(small_file), embedder=embedder, ask=model)
    found = await classifier.classify("Help, the toaster is ON FIRE", current="billing")
    assert (found.intent, found.stage, found.score) == ("safety", "pattern", 1.0)
    assert (embedder.batches, embedder.queries, model.asked) == ([], [], [])


async def test_patterns_of_two_intents_leave_it_to_the_next_stage_unless_one_is_urgent(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    text = SMALL.replace(
        "    prompt: You are the billing specialist.\n",
        "    prompt: You are the billing specialist.\n    patterns:\n      - '\\bparcel\\b'\n",
    ).replace(
        "    pipeline: agents\n",
        "    pipeline: agents\n    patterns:\n      - '\\bparcel\\b'\n      - '\\bcourier\\b'\n",
    )
    path = tmp_path / "two.yaml"
    path.write_text(text)
    classifier = Classifier(load_intents(path), embedder=embedder)
    both = await classifier.classify(CLEAR)
    assert (both.intent, both.stage) == ("delivery", "embedding")
    one = await classifier.classify("the courier was here at noon")
    assert (one.intent, one.stage) == ("delivery", "pattern")
    urgent = await classifier.classify("the parcel from the courier is on fire")
    assert (urgent.intent, urgent.stage) == ("safety", "pattern")


async def test_the_nearest_examples_decide_a_clear_message(
    small_file: Path, embedder: CountingEmbedder
) -> None:
    model = Model("billing")
    classifier = Classifier(load_intents(small_file), embedder=embedder, ask=model)
    found = await classifier.classify(CLEAR)
    assert (found.intent, found.stage) == ("delivery", "embedding")
    assert found.score >= 0.45
    assert found.similarity >= 0.8  # it is nearly one of the delivery examples
    paid = await classifier.classify(PAID)
    assert (paid.intent, paid.stage) == ("billing", "embedding")
    assert model.asked == []
    assert 0 < found.seconds < 30


async def test_the_scores_are_probabilities_over_the_intents_with_examples(
    small_file: Path, embedder: CountingEmbedder
) -> None:
    classifier = Classifier(load_intents(small_file), embedder=embedder)
    scores, nearest = await classifier._scores(embedder, MIXED)
    assert set(scores) == {"safety", "billing", "delivery", "refunds", "other"}
    assert sum(scores.values()) == pytest.approx(1, abs=1e-3)
    assert all(0 < score < 1 for score in scores.values())
    assert 0.25 < nearest < 1


async def test_one_intent_with_examples_is_scored_by_its_examples_alone(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "fallback: other\nintents:\n"
        "  - name: delivery\n    description: Parcels.\n    prompt: Track it.\n"
        "    examples: ['Where is my parcel?', 'When will my order be delivered?']\n"
        "  - name: other\n    description: The rest.\n    prompt: Answer briefly.\n"
    )
    classifier = Classifier(load_intents(path), embedder=embedder)
    found = await classifier.classify(CLEAR)
    assert (found.intent, found.stage, found.score) == ("delivery", "embedding", 1.0)
    far = await classifier.classify("Write a haiku about autumn leaves")
    assert (far.intent, far.stage) == ("other", "fallback")


async def test_a_message_far_from_every_example_gets_the_fallback_unasked(
    small_file: Path, embedder: CountingEmbedder
) -> None:
    model = Model("billing")
    classifier = Classifier(load_intents(small_file), embedder=embedder, ask=model)
    found = await classifier.classify("Write a haiku about autumn leaves")
    assert (found.intent, found.stage) == ("other", "fallback")
    assert found.similarity < 0.25
    assert model.asked == []


async def test_the_examples_are_embedded_once_in_one_batch(
    small_file: Path, embedder: CountingEmbedder
) -> None:
    intents = load_intents(small_file)
    classifier = Classifier(intents, embedder=embedder)
    found = await asyncio.gather(*(classifier.classify(text) for text in (CLEAR, MIXED, CLEAR)))
    await classifier.classify(PAID)
    assert embedder.batches == [sum(len(intent.examples) for intent in intents)]
    assert len(embedder.queries) == 4
    assert found[0] == replace(found[2], seconds=found[0].seconds)


async def test_prepared_the_examples_are_embedded_before_the_first_message(
    small_file: Path, embedder: CountingEmbedder
) -> None:
    intents = load_intents(small_file)
    classifier = Classifier(intents, embedder=embedder)
    await classifier.prepare()
    assert (embedder.batches, embedder.queries) == ([sum(len(i.examples) for i in intents)], [])
    found = await classifier.classify(CLEAR)
    assert (found.intent, found.stage) == ("delivery", "embedding")
    assert (len(embedder.batches), embedder.queries) == (1, [CLEAR])


async def test_without_an_embedder_there_is_nothing_to_prepare(small_file: Path) -> None:
    model = Model("delivery")
    classifier = Classifier(load_intents(small_file), ask=model)
    await classifier.prepare()
    assert model.asked == []
    found = await classifier.classify(CLEAR)
    assert (found.intent, found.stage) == ("delivery", "model")


async def test_what_stays_ambiguous_is_asked_of_the_model(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    model = Model("Category: Refunds.")
    classifier = Classifier(small(tmp_path, match=0.99), embedder=embedder, ask=model)
    found = await classifier.classify(MIXED)
    assert (found.intent, found.stage) == ("refunds", "model")
    assert 0.25 <= found.score < 0.99
    [asked] = model.asked
    assert asked[0]["role"] == "system"
    assert "- refunds: Money back for returned items." in asked[0]["content"]
    shots = asked[1:-1]
    assert [m["role"] for m in shots] == ["user", "assistant"] * (len(shots) // 2)
    answers = {m["content"] for m in shots if m["role"] == "assistant"}
    assert answers == {"safety", "billing", "delivery", "refunds", "other"}
    assert asked[-1] == {"role": "user", "content": MIXED}


@pytest.mark.parametrize("reply", ["I cannot tell.", "", "the weather"])
async def test_a_model_that_names_no_intent_leaves_the_fallback(
    tmp_path: Path, embedder: CountingEmbedder, reply: str
) -> None:
    classifier = Classifier(small(tmp_path, match=0.99), embedder=embedder, ask=Model(reply))
    found = await classifier.classify(MIXED)
    assert (found.intent, found.stage) == ("other", "fallback")


@pytest.mark.parametrize("reply", ["I cannot tell.", UpstreamTimeout("openai", "no answer")])
async def test_a_close_call_the_model_does_not_decide_goes_to_the_best_intent(
    tmp_path: Path, embedder: CountingEmbedder, reply: str | Exception
) -> None:
    model = Model(reply)
    classifier = Classifier(small(tmp_path, margin=0.9), embedder=embedder, ask=model)
    found = await classifier.classify(MIXED)
    assert (found.intent, found.stage) == ("delivery", "embedding")
    assert 0.45 <= found.score < 0.9
    assert len(model.asked) == 1


async def test_without_a_model_the_ambiguous_rest_gets_the_fallback(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    classifier = Classifier(small(tmp_path, match=0.99), embedder=embedder)
    found = await classifier.classify(MIXED)
    assert (found.intent, found.stage) == ("other", "fallback")
    assert found.similarity >= 0.25
    close = Classifier(small(tmp_path, margin=0.9), embedder=embedder)
    assert (await close.classify(MIXED)).intent == "delivery"


async def test_without_an_embedder_the_model_classifies(small_file: Path) -> None:
    model = Model("delivery")
    classifier = Classifier(load_intents(small_file), ask=model)
    found = await classifier.classify(CLEAR)
    assert (found.intent, found.stage, found.score, found.similarity) == (
        "delivery",
        "model",
        0.0,
        0.0,
    )
    alone = Classifier(load_intents(small_file))
    assert (await alone.classify(CLEAR)).stage == "fallback"
    assert (await alone.classify("my TV is on fire")).stage == "pattern"


# --- the conversation's intent ----------------------------------------------------------------


async def test_a_follow_up_that_names_no_intent_keeps_the_current_one(
    small_file: Path, embedder: CountingEmbedder
) -> None:
    model = Model("billing")
    classifier = Classifier(load_intents(small_file), embedder=embedder, ask=model)
    kept = await classifier.classify(NAMES_NONE, current="delivery")
    assert (kept.intent, kept.stage) == ("delivery", "kept")
    assert kept.similarity < 0.25
    alone = await classifier.classify(NAMES_NONE)
    assert (alone.intent, alone.stage) == ("other", "fallback")
    switched = await classifier.classify(CLEAR, current="billing")
    assert (switched.intent, switched.stage) == ("delivery", "embedding")
    gone = await classifier.classify(NAMES_NONE, current="an intent no longer configured")
    assert (gone.intent, gone.stage) == ("other", "fallback")
    blank = await classifier.classify("  ", current="refunds")
    assert (blank.intent, blank.stage) == ("refunds", "kept")
    assert model.asked == []


async def test_an_ambiguous_message_keeps_the_current_intent_when_it_is_a_contender(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    model = Model("billing")
    classifier = Classifier(small(tmp_path, margin=0.9, switch=0.5), embedder=embedder, ask=model)
    kept = await classifier.classify(MIXED, current="refunds")
    assert (kept.intent, kept.stage) == ("refunds", "kept")
    assert model.asked == []
    asked = await classifier.classify(MIXED)
    assert (asked.intent, asked.stage) == ("billing", "model")
    assert len(model.asked) == 1


async def test_the_conversation_leaves_its_intent_only_for_one_above_switch(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    classifier = Classifier(small(tmp_path, switch=0.8), embedder=embedder)
    alone = await classifier.classify(PAID)
    assert (alone.intent, alone.stage) == ("billing", "embedding")
    assert 0.45 <= alone.score < 0.8
    kept = await classifier.classify(PAID, current="delivery")
    assert (kept.intent, kept.stage) == ("delivery", "kept")
    same = await classifier.classify(PAID, current="billing")
    assert (same.intent, same.stage) == ("billing", "embedding")
    left = await classifier.classify(CLEAR, current="billing")
    assert (left.intent, left.stage) == ("delivery", "embedding")
    assert left.score >= 0.8


async def test_the_model_answering_the_fallback_keeps_the_current_intent(small_file: Path) -> None:
    classifier = Classifier(load_intents(small_file), ask=Model("other"))
    kept = await classifier.classify("and the second one?", current="billing")
    assert (kept.intent, kept.stage) == ("billing", "kept")
    fresh = await classifier.classify("and the second one?")
    assert (fresh.intent, fresh.stage) == ("other", "model")


# --- the cache --------------------------------------------------------------------------------


async def test_a_repeated_message_is_neither_embedded_nor_asked_again(
    tmp_path: Path, embedder: CountingEmbedder, cache: IntentCache, redis_url: str
) -> None:
    intents = small(tmp_path, match=0.99)
    model = Model("refunds")
    classifier = Classifier(intents, embedder=embedder, ask=model, model="m", cache=cache)
    first = await classifier.classify(MIXED)
    assert (first.intent, first.stage, first.cached) == ("refunds", "model", False)
    again = await classifier.classify(f"  {MIXED} ")
    assert (again.intent, again.stage, again.score, again.cached) == (
        "refunds",
        "model",
        first.score,
        True,
    )
    assert (len(embedder.queries), len(model.asked)) == (1, 1)
    elsewhere = Classifier(intents, embedder=embedder, ask=Model("billing"), model="m", cache=cache)
    assert (await elsewhere.classify(MIXED)).intent == "refunds"
    assert (embedder.batches, len(embedder.queries)) == ([embedder.batches[0]], 1)
    async with aioredis.Redis.from_url(redis_url) as redis:  # the verdict and the examples
        assert len([key async for key in redis.scan_iter(match="cache:intent:*")]) == 2
    other_model = Classifier(
        intents, embedder=embedder, ask=Model("billing"), model="n", cache=cache
    )
    assert (await other_model.classify(MIXED)).intent == "billing"
    changed = Classifier(small(tmp_path, match=0.98), embedder=embedder, ask=model, cache=cache)
    assert (await changed.classify(MIXED)).cached is False


async def test_the_scores_are_kept_for_a_clear_message_too(
    small_file: Path, embedder: CountingEmbedder, cache: IntentCache
) -> None:
    classifier = Classifier(load_intents(small_file), embedder=embedder, cache=cache)
    first = await classifier.classify(CLEAR)
    again = await classifier.classify(CLEAR, current="billing")
    assert (again.intent, again.stage, again.cached) == ("delivery", "embedding", True)
    assert again.score == first.score
    assert len(embedder.queries) == 1
    assert cache.space.lookups["hit"] == 1


async def test_a_restarted_classifier_reads_the_examples_vectors_from_the_cache(
    tmp_path: Path, small_file: Path, embedder: CountingEmbedder, cache: IntentCache
) -> None:
    intents = load_intents(small_file)
    first = await Classifier(intents, embedder=embedder, cache=cache).classify(PAID)
    assert embedder.batches == [sum(len(intent.examples) for intent in intents)]
    restarted = await Classifier(intents, embedder=embedder, cache=cache).classify(MIXED)
    assert embedder.batches == [sum(len(intent.examples) for intent in intents)]
    assert (restarted.intent, restarted.stage) == ("delivery", "embedding")
    alone = await Classifier(intents, embedder=embedder).classify(MIXED)
    assert (restarted.score, restarted.similarity) == (alone.score, alone.similarity)
    assert first.intent == "billing"
    await Classifier(one_more(tmp_path), embedder=embedder, cache=cache).classify(MIXED)
    assert embedder.batches[-1] == embedder.batches[0] + 1


async def test_a_model_that_failed_is_asked_again(small_file: Path, cache: IntentCache) -> None:
    model = Model(UpstreamTimeout("openai", "no answer"), "billing")
    classifier = Classifier(load_intents(small_file), ask=model, model="m", cache=cache)
    failed = await classifier.classify(MIXED)
    assert (failed.intent, failed.stage) == ("other", "fallback")
    answered = await classifier.classify(MIXED)
    assert (answered.intent, answered.stage, answered.cached) == ("billing", "model", False)
    assert len(model.asked) == 2
    assert (await classifier.classify(MIXED)).cached is True


async def test_no_verdict_is_kept_when_caching_is_off(
    small_file: Path, embedder: CountingEmbedder, redis_url: str
) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        cache = Caches.open(redis, load_settings(_env_file=None, llm_cache_ttl=0).state).intent
        classifier = Classifier(load_intents(small_file), embedder=embedder, cache=cache)
        await classifier.classify(CLEAR)
        assert (await classifier.classify(CLEAR)).cached is False
    assert len(embedder.queries) == 2


# --- the model through the gateway's router -----------------------------------------------------


async def test_the_model_stage_through_a_real_router(
    small_file: Path, openai_server: tuple[str, OpenAIUpstreamState], upstream: OpenAIUpstreamState
) -> None:
    url, _ = openai_server
    settings = gateway_settings(openai_base_url=f"{url}/v1", openai_api_key="upstream-key")
    upstream.replies = ["Intent: delivery"]
    async with aiohttp.ClientSession() as http:
        providers, _ = build_providers(settings.providers, http)
        router = Router(providers, settings.providers)
        route = await router.resolve("openai/replies")
        ask = partial(router.ask, route, max_tokens=8, within=5.0)
        classifier = Classifier(load_intents(small_file), ask=ask, model=route.id)
        found = await classifier.classify("Has it shipped?")
    assert (found.intent, found.stage) == ("delivery", "model")
    [sent] = upstream.requests
    assert sent["max_tokens"] == 8
    assert sent["messages"][-1] == {"role": "user", "content": "Has it shipped?"}


# --- the shipped set --------------------------------------------------------------------------


async def test_the_default_set_routes_a_support_desk(embedder: CountingEmbedder) -> None:
    classifier = Classifier(load_intents(), embedder=embedder)
    cases = [
        ("The charger caught fire on my desk", None, "emergency", "pattern"),
        ("hello!", None, "greeting", "pattern"),
        ("how can I get my money back for the kettle?", None, "returns", "embedding"),
        ("the package has not shown up yet, any news?", None, "orders", "embedding"),
        ("who painted the ceiling of the Sistine Chapel", None, "general", "embedding"),
        ("Can you suggest a good recipe for pancakes?", None, "general", "embedding"),
        ("and the second one?", "billing", "billing", "kept"),
        ("yes please", "returns", "returns", "kept"),
        ("Has my parcel been sent yet? I ordered on Monday", "billing", "orders", "embedding"),
    ]
    for text, current, intent, stage in cases:
        found = await classifier.classify(text, current)
        assert (found.intent, found.stage) == (intent, stage), text


# --- reading the model's reply -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "intent"),
    [
        ("billing", "billing"),
        ("  Billing.\n", "billing"),
        ("Intent: **ORDERS**", "orders"),
        ('{"intent": "returns"}', "returns"),
        ("I think returns, or maybe billing", "returns"),
        ("small talk", "small_talk"),
        ("small-talk", "small_talk"),
        ("talk", None),
        ("rebilling", None),
        ("none of these", None),
        ("", None),
    ],
)
def test_the_models_reply_is_read_for_the_first_intent_it_names(
    reply: str, intent: str | None
) -> None:
    assert parse_intent(reply, ["billing", "orders", "returns", "small_talk"]) == intent
