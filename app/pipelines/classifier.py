"""Which intent a user's message has, in stages:

1. pattern: the intent whose patterns the message matches, when one intent's do, or an urgent
   one's among several (several others: on to the next stage);
2. embedding (with an embedder): each intent's score is the mean of two probabilities over the
   intents with examples: a logistic-regression head trained on the examples' vectors beside
   their words (tf-idf of words, word pairs and character n-grams, which catch the names and
   phrasings an embedding blurs), and the nearest examples' vote (a softmax of each intent's
   mean similarity to its `neighbours` nearest examples). The best intent is decided when its
   score reaches `match` and leads every other by `margin`. When no intent's nearest examples
   reach the `floor` similarity, the message names no intent;
3. model (with a classifier model): asked for what stays ambiguous between those thresholds;
   what it does not decide goes to the best intent by embedding when that reaches `match`;
4. fallback: the configured fallback intent.

The conversation's current intent is kept (stage `kept`) for a message that names no intent
("and the second one?"), that is ambiguous between it and others, whose best intent is another
but below the `switch` score, or that the model answers with the fallback or nothing it knows.
The examples are embedded (or their vectors read from the intent cache) and the head trained
once, at first use. Scores and the model's answer are kept in the intent cache per message, so
that a message seen again is neither embedded nor asked about again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from app.errors import GatewayError
from app.knowledge.embedder import Embedder, Vectors
from app.pipelines.intents import IntentSet
from app.state.cache import IntentCache

log = logging.getLogger(__name__)

Ask = Callable[[list[dict[str, Any]]], Awaitable[str]]
"""A short answer of the classifier model to chat messages (the router wires `Router.ask`)."""
Stage = Literal["pattern", "embedding", "model", "fallback", "kept"]

SHOTS = 2
"""Examples of each intent shown to the model, as earlier exchanges of the conversation."""
TEMPERATURE = 0.05
"""How sharply the nearest examples vote: a softmax of the similarities over this."""
REGULARISATION = 4.0
"""The head's inverse regularisation strength (LogisticRegression's C)."""
METHOD = "words+vectors head, nearest"
"""Names the scoring in the cache's scope: verdicts scored another way are not reused."""


@dataclass(frozen=True, slots=True)
class Classification:
    intent: str
    stage: Stage
    score: float
    """1.0 for a pattern; else the best intent's embedding score, a probability (0.0 without
    an embedder)."""
    similarity: float
    """The best similarity of an intent's nearest examples (0.0 for a pattern or without an
    embedder)."""
    seconds: float
    cached: bool = False
    """The scores and the model's answer came from the cache; nothing was embedded or asked."""


class Classifier:
    """The stages over `intents`; `embedder`, `ask` (with `model`, its id, which scopes the
    cache) and `cache` are each optional."""

    def __init__(
        self,
        intents: IntentSet,
        *,
        embedder: Embedder | None = None,
        ask: Ask | None = None,
        model: str = "",
        cache: IntentCache | None = None,
    ) -> None:
        self.intents = intents
        self._embedder = embedder
        self._ask = ask
        self._cache = cache
        self._scope = "|".join(
            (METHOD, intents.digest, embedder.name if embedder else "", model if ask else "")
        )
        self._examples: _Examples | None = None
        self._embedding = asyncio.Lock()
        self._prompt = prompt(intents)

    async def prepare(self) -> None:
        """Embed the examples and train the head now rather than at the first message."""
        if self._embedder is not None:
            await self._trained(self._embedder)

    async def classify(self, text: str, current: str | None = None) -> Classification:
        """`text`'s intent; `current` is the conversation's (None: none yet, or one no longer
        configured)."""
        started = time.perf_counter()
        stage, intent, score, similarity, cached = await self._classify(
            text, current if current in self.intents else None
        )
        seconds = time.perf_counter() - started
        return Classification(intent, stage, score, similarity, seconds, cached)

    async def _classify(
        self, text: str, current: str | None
    ) -> tuple[Stage, str, float, float, bool]:
        matched = [i for i in self.intents if any(p.search(text) for p in i.patterns)]
        urgent = [intent for intent in matched if intent.urgent]
        if urgent or len(matched) == 1:
            return "pattern", (urgent or matched)[0].name, 1.0, 0.0, False
        unclear: tuple[Stage, str] = ("kept", current) if current else ("fallback", self.fallback)
        if not text.strip():
            return *unclear, 0.0, 0.0, False
        found = await self._cache.verdict(text, self._scope) if self._cache else None
        verdict = dict(found or {})
        if self._embedder is not None and "scores" not in verdict:
            verdict["scores"], verdict["nearest"] = await self._scores(self._embedder, text)
        scores: dict[str, float] = verdict.get("scores") or {}
        nearest: float = verdict.get("nearest", 0.0)
        decided = self._by_scores(scores, nearest, current, unclear)
        if decided is None and self._ask is not None and "asked" not in verdict:
            try:
                verdict["asked"] = await self._model(self._ask, text)
            except GatewayError as exc:  # not kept: asked again next time
                log.warning("intent classification by the model failed: %s", exc.message)
        if self._cache is not None and verdict and verdict != found:
            await self._cache.keep_verdict(text, self._scope, verdict)
        if decided is None:
            decided = self._by_model(verdict.get("asked"), current) or self._likeliest(scores)
        decided = decided or unclear
        return *decided, max(scores.values(), default=0.0), nearest, verdict == found

    def _by_scores(
        self,
        scores: dict[str, float],
        nearest: float,
        current: str | None,
        unclear: tuple[Stage, str],
    ) -> tuple[Stage, str] | None:
        """The embedding stage's decision from the intents' `scores` and the `nearest`
        examples' similarity: an intent, `unclear` (the message names none, is ambiguous
        between the current intent and others, or is not clear enough to leave the current
        intent), or None (ambiguous: the model's)."""
        if not scores:
            return None
        limits = self.intents.thresholds
        if nearest < limits.floor:
            return unclear
        ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
        (name, best), runner_up = ranked[0], ranked[1][1] if len(ranked) > 1 else 0.0
        if current is not None and name != current and best < limits.switch:
            return unclear
        if best >= limits.match and best - runner_up >= limits.margin:
            return "embedding", name
        contenders = {name for name, score in ranked if best - score < limits.margin}
        return unclear if current in contenders else None

    def _by_model(self, answer: object, current: str | None) -> tuple[Stage, str] | None:
        """The model's answer, unless it is none, or the fallback while the conversation has
        an intent."""
        if not isinstance(answer, str) or answer not in self.intents:
            return None
        if answer == self.fallback and current is not None:
            return None
        return "model", answer

    def _likeliest(self, scores: dict[str, float]) -> tuple[Stage, str] | None:
        """For an ambiguous message the model did not decide: the best intent by embedding,
        if its score reaches `match`."""
        if not scores:
            return None
        name, best = max(scores.items(), key=lambda item: item[1])
        return ("embedding", name) if best >= self.intents.thresholds.match else None

    @property
    def fallback(self) -> str:
        return self.intents.fallback

    async def _scores(self, embedder: Embedder, text: str) -> tuple[dict[str, float], float]:
        """Each intent with examples: its score for `text`; and the highest similarity of an
        intent's nearest examples to it."""
        examples = await self._trained(embedder)
        vector = await embedder.query(text)
        similarities = examples.vectors @ vector
        nearest = self.intents.thresholds.neighbours
        means = np.array([np.sort(similarities[rows])[-nearest:].mean() for rows in examples.owned])
        votes = np.exp((means - means.max()) / TEMPERATURE)
        votes /= votes.sum()
        if examples.head is not None:
            votes = (votes + examples.head.probabilities(text, vector)) / 2
        scores = {name: round(float(p), 4) for name, p in zip(examples.names, votes, strict=True)}
        return scores, round(float(means.max()), 4)

    async def _trained(self, embedder: Embedder) -> _Examples:
        """The examples' vectors and the head trained on them, at first use."""
        async with self._embedding:
            if self._examples is None:
                started = time.perf_counter()
                taught = [intent for intent in self.intents if intent.examples]
                texts = [example for intent in taught for example in intent.examples]
                vectors = await self._vectors(embedder, texts)
                labels = np.repeat(np.arange(len(taught)), [len(i.examples) for i in taught])
                owned = [np.flatnonzero(labels == number) for number in range(len(taught))]
                head = None
                if len(taught) > 1:
                    head = await asyncio.to_thread(_Head.train, texts, vectors, labels)
                self._examples = _Examples([i.name for i in taught], vectors, owned, head)
                log.info(
                    "intent classifier ready in %.1f s: %d examples of %d intents",
                    time.perf_counter() - started,
                    len(texts),
                    len(taught),
                )
            return self._examples

    async def _vectors(self, embedder: Embedder, texts: list[str]) -> Vectors:
        """The vectors of `texts`, the examples: those kept in the intent cache for these
        intents and this embedder, else embedded and kept."""
        scope = f"{self.intents.digest}|{embedder.name}"
        kept = await self._cache.vectors(scope) if self._cache else None
        if kept is not None and len(kept) == len(texts) * embedder.dimension * 4:
            return np.frombuffer(kept, dtype=np.float32).reshape(len(texts), embedder.dimension)
        vectors = await embedder.documents(texts)
        if self._cache is not None:
            await self._cache.keep_vectors(scope, vectors.astype(np.float32).tobytes())
        return vectors

    async def _model(self, ask: Ask, text: str) -> str | None:
        """The intent the model names for `text`, or None."""
        reply = await ask([*self._prompt, {"role": "user", "content": text}])
        return parse_intent(reply, self.intents.names)


@dataclass(frozen=True, slots=True)
class _Examples:
    names: list[str]
    """The intents with examples, in the file's order: the head's classes are their indices."""
    vectors: Vectors
    owned: list[npt.NDArray[np.intp]]
    """Which rows of `vectors` are each intent's."""
    head: _Head | None
    """None when only one intent has examples."""


@dataclass(frozen=True, slots=True)
class _Head:
    """A logistic regression over a message's vector and its words."""

    words: TfidfVectorizer
    characters: TfidfVectorizer
    model: LogisticRegression

    @classmethod
    def train(cls, texts: list[str], vectors: Vectors, labels: npt.NDArray[np.intp]) -> _Head:
        words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        characters = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
        model = LogisticRegression(C=REGULARISATION, max_iter=3000)
        head = cls(words.fit(texts), characters.fit(texts), model)
        head.model.fit(head._features(texts, vectors), labels)
        return head

    def probabilities(self, text: str, vector: Vectors) -> npt.NDArray[np.float64]:
        """Each intent's probability for `text`, whose vector is `vector`."""
        features = self._features([text], vector[np.newaxis])
        probabilities: npt.NDArray[np.float64] = self.model.predict_proba(features)[0]
        return probabilities

    def _features(self, texts: list[str], vectors: Vectors) -> csr_matrix:
        """One row per text: its vector, then its words' and character n-grams' tf-idf."""
        parts = [csr_matrix(vectors), self.words.transform(texts), self.characters.transform(texts)]
        return hstack(parts).tocsr()


def prompt(intents: IntentSet) -> list[dict[str, str]]:
    """The messages in front of the user's: the intents described, then examples of each
    answered with its name (in a fixed shuffled order, so that no order is learnt). A base model
    continues the pattern; a chat model follows the instruction."""
    described = "\n".join(f"- {intent.name}: {intent.description}" for intent in intents)
    system = (
        "Sort each message into one of these intents and answer with the intent's name only.\n"
        + described
    )
    shots = [(example, intent.name) for intent in intents for example in intent.examples[:SHOTS]]
    random.Random(0).shuffle(shots)
    messages = [{"role": "system", "content": system}]
    for example, name in shots:
        messages += [{"role": "user", "content": example}, {"role": "assistant", "content": name}]
    return messages


def parse_intent(reply: str, names: Sequence[str]) -> str | None:
    """The intent `reply` names first (any case; spaces, hyphens and underscores alike), or
    None when it names none."""
    folded = _fold(reply)
    found = []
    for name in names:
        match = re.search(rf"(?<![a-z0-9]){re.escape(_fold(name))}(?![a-z0-9])", folded)
        if match:
            found.append((match.start(), -len(name), name))
    return min(found)[2] if found else None


def _fold(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.casefold())
