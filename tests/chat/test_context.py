"""Token counting and context packing, as pure functions."""

from __future__ import annotations

import random
import string
import time
import warnings
from typing import Any

import httpx
import pytest

from app.chat.context import (
    ESTIMATE,
    REPLY_PRIMING,
    SUMMARY_HEADING,
    counter_for,
    estimate,
    fold_batches,
    fold_count,
    pack,
    split_turns,
)
from tests.conftest import MakeGateway

PERSONA = "You are a helpful assistant."


def turn(n: int, words: int = 3) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"question {n} " + "word " * words},
        {"role": "assistant", "content": f"answer {n} " + "word " * words},
    ]


def history(turns: int, words: int = 3) -> list[dict[str, Any]]:
    return [m for n in range(1, turns + 1) for m in turn(n, words)]


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-4o", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("openai/gpt-4", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("openai/gpt-5", "o200k_base"),
        ("openai/some-served-model", "o200k_base"),
        ("ollama/llama3.2", "estimate"),
        ("local/gemma", "estimate"),
        ("llamacpp/anything", "estimate"),
    ],
)
def test_openai_models_are_counted_with_their_tokenizer(model: str, encoding: str) -> None:
    assert counter_for(model).name == encoding


def test_a_real_tokenizer_counts_tokens_not_characters() -> None:
    counter = counter_for("openai/gpt-4o")
    assert counter.count("Hello world") == 2
    assert counter.count("<|endoftext|>") > 1  # special tokens in text are plain text
    assert counter.prompt([{"role": "user", "content": "Hello world"}]) == 3 + 2 + REPLY_PRIMING


def test_texts_bpe_openai_refuses_whole_are_counted_in_bounded_time() -> None:
    """bpe-openai refuses a million characters, or more than 200,000 tokens; past 200,000
    characters the count is extrapolated from the head, so ten million cost no more."""
    counter = counter_for("openai/gpt-4o")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai
    encoding = bpe_openai.get_encoding("o200k_base")

    def exact(text: str) -> int:
        return sum(
            len(encoding.encode_ordinary(text[i : i + 10_000])) for i in range(0, len(text), 10_000)
        )

    noise = "".join(random.Random(7).choices(string.printable, k=300_000))
    with pytest.raises(ValueError, match="exceeds chunk limit"):
        encoding.encode_ordinary(noise)
    assert counter.count(noise) == pytest.approx(exact(noise), rel=0.02)
    text = "The quick brown fox jumps over the lazy dog. " * 20_000
    assert counter.count(text[:50_000]) == len(encoding.encode_ordinary(text[:50_000]))
    assert counter.count(text[:150_000]) == pytest.approx(exact(text[:150_000]), rel=0.001)
    with pytest.raises(ValueError, match="Input too long"):
        encoding.encode_ordinary(text * 2)
    started = time.perf_counter()
    assert counter.count(text * 11) == pytest.approx(11 * exact(text), rel=0.01)
    assert time.perf_counter() - started < 1


def test_a_million_character_message_on_chat_is_answered(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    message = "word " * 200_000
    resp = httpx.post(
        f"{url}/chat",
        json={"user_id": "u1", "message": message, "model": "openai/gpt-test"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] > 0


def test_the_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert estimate("") == 0
    assert estimate("abcd") == 1
    assert estimate("abcde") == 2
    messages = [{"role": "user", "content": "abcdefgh"}, {"role": "assistant", "content": "x"}]
    assert ESTIMATE.messages(messages) == (4 + 2) + (4 + 1)


def test_content_parts_are_counted_by_their_text() -> None:
    parts = [{"type": "text", "text": "abcd"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert ESTIMATE.messages([{"role": "user", "content": parts}]) == 4 + 1


def test_split_turns_starts_each_turn_at_a_user_message() -> None:
    messages = history(2)
    assert split_turns(messages) == [messages[:2], messages[2:]]
    assert split_turns([]) == []


def test_packing_order_summary_history_new() -> None:
    packed = pack(
        persona=PERSONA,
        summary="The user is Alice.",
        history=history(2),
        new="What is my name?",
        k=6,
        budget=3000,
        counter=ESTIMATE,
    )
    system, *rest = packed.messages
    assert system["role"] == "system"
    assert system["content"] == f"{SUMMARY_HEADING}\nThe user is Alice."
    assert rest[:-1] == [{"role": m["role"], "content": m["content"]} for m in history(2)]
    assert rest[-1] == {"role": "user", "content": "What is my name?"}
    assert (packed.turns, packed.left_out) == (2, 0)


def test_the_persona_is_counted_but_left_to_the_chat_service() -> None:
    bare = pack(persona="", summary="", history=[], new="hi", k=6, budget=300, counter=ESTIMATE)
    with_persona = pack(
        persona=PERSONA,
        summary="",
        history=[],
        new="hi",
        k=6,
        budget=300,
        counter=ESTIMATE,
    )
    assert bare.messages == with_persona.messages == [{"role": "user", "content": "hi"}]
    assert with_persona.tokens == bare.tokens + ESTIMATE.per_message + estimate(PERSONA)


def test_only_the_last_k_turns_go_verbatim() -> None:
    packed = pack(
        persona=PERSONA,
        summary="",
        history=history(5),
        new="next",
        k=2,
        budget=3000,
        counter=ESTIMATE,
    )
    assert [m["content"] for m in packed.messages[:-1]] == [m["content"] for m in history(5)[-4:]]
    assert (packed.turns, packed.left_out) == (2, 6)


def test_the_budget_keeps_the_newest_turns_that_fit() -> None:
    counter = counter_for("openai/gpt-4o")
    messages = history(10, words=20)
    for budget in (60, 120, 250, 400):
        packed = pack(
            persona=PERSONA,
            summary="A summary.",
            history=messages,
            new="What now?",
            k=10,
            budget=budget,
            counter=counter,
        )
        with_persona = [
            {"role": "system", "content": PERSONA + "\n\n" + packed.messages[0]["content"]},
            *packed.messages[1:],
        ]
        assert packed.tokens == counter.prompt(with_persona)
        assert packed.tokens <= budget or packed.turns == 0
        kept = packed.messages[1:-1]
        assert kept == [
            {"role": m["role"], "content": m["content"]}
            for m in messages[len(messages) - len(kept) :]
        ]
        assert packed.left_out == len(messages) - len(kept)


def test_the_new_message_and_summary_go_even_over_budget() -> None:
    packed = pack(
        persona=PERSONA,
        summary="S " * 400,
        history=history(2),
        new="Q " * 400,
        k=6,
        budget=256,
        counter=ESTIMATE,
    )
    assert packed.turns == 0
    assert packed.messages[-1]["content"] == "Q " * 400
    assert packed.messages[0]["content"].startswith(SUMMARY_HEADING)
    assert packed.tokens > 256


def test_fold_count_leaves_k_turns_within_half_the_budget() -> None:
    messages = history(4)
    args: dict[str, Any] = {"persona": PERSONA, "budget": 3000, "counter": ESTIMATE}
    assert fold_count(messages, k=6, max_messages=200, **args) == 0
    assert fold_count(messages, k=1, max_messages=200, **args) == 6
    assert fold_count(messages, k=3, max_messages=200, **args) == 2
    # half the budget less the persona: room for one turn of this size only
    one = ESTIMATE.messages(turn(4, words=40))
    persona = ESTIMATE.per_message + estimate(PERSONA)
    budget = 2 * (persona + one + 1)
    long = history(4, words=40)
    assert fold_count(long, k=6, max_messages=200, **{**args, "budget": budget}) == 6
    # room for the next turn under MAX_SESSION_MESSAGES
    assert fold_count(messages, k=6, max_messages=4, **args) == 6
    assert fold_count(messages, k=6, max_messages=2, **args) == 8


def test_fold_batches_cut_at_turns_under_the_budget() -> None:
    messages = history(6, words=10)
    cost = ESTIMATE.messages(turn(1, words=10))
    batches = fold_batches(messages, budget=cost * 2, counter=ESTIMATE)
    assert [len(b) for b in batches] == [4, 4, 4]
    assert [m for b in batches for m in b] == messages
    assert fold_batches(messages, budget=1, counter=ESTIMATE) == split_turns(messages)
