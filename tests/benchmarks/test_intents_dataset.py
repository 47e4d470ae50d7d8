"""The intent benchmark's labelled set is a fair test of the shipped intents: large enough, over
every intent, with out-of-scope utterances, in its two splits, and none of its utterances one
of the examples the classifier learns from."""

from __future__ import annotations

import re
from collections import Counter

from app.pipelines.intents import load_intents
from benchmarks.intents import load_set


def folded(text: str) -> str:
    """Case, punctuation and spacing aside."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def test_the_set_covers_every_intent_with_out_of_scope_utterances() -> None:
    intents = load_intents()
    utterances = load_set()
    counts = Counter(u.intent for u in utterances)
    assert len(utterances) >= 200
    assert set(counts) == set(intents.names)
    assert min(counts.values()) >= 20
    assert counts[intents.fallback] / len(utterances) >= 0.10
    splits = {u.split for u in utterances}
    assert splits == {"fresh-10", "fresh-11"}
    for split in splits:
        part = [u for u in utterances if u.split == split]
        assert {u.intent for u in part} == set(intents.names), split
        assert sum(u.intent == intents.fallback for u in part) / len(part) >= 0.08, split


def test_no_utterance_is_an_example_or_repeated() -> None:
    examples = {folded(example) for intent in load_intents() for example in intent.examples}
    utterances = [folded(u.text) for u in load_set()]
    assert [u for u in utterances if u in examples] == []
    assert [u for u, n in Counter(utterances).items() if n > 1] == []


def test_the_set_varies_in_length_and_form() -> None:
    texts = [u.text for u in load_set()]
    words = [len(text.split()) for text in texts]
    assert min(words) <= 2
    assert max(words) >= 15
    assert sum(text.count(". ") + text.count("? ") + text.count("! ") > 0 for text in texts) >= 15
    assert sum(text[0].islower() for text in texts) >= 40
