"""Which intent a user's message has, in stages:

1. pattern: the first intent (in the file's order) one of whose patterns the message matches;
2. embedding (with an embedder): each intent's score is the mean cosine similarity of its
   nearest examples; the best intent is decided when it reaches the `match` threshold and leads
   every other by `margin`. Below `floor` the message names no intent;
3. model (with a classifier model): asked for what stays ambiguous between those thresholds;
4. fallback: the configured fallback intent.

The conversation's current intent is kept (stage `kept`) for a message that names no intent
("and the second one?"), that is ambiguous between it and others, whose best intent is another
but below the `switch` threshold, or that the model answers with the fallback or nothing it
knows. The examples are embedded once, at first use, in one
batch. Scores and the model's answer are kept in the intent cache per message, so that a message
seen again is neither embedded nor asked about again.
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


@dataclass(frozen=True, slots=True)
class Classification:
    intent: str
    stage: Stage
    score: float
    """1.0 for a pattern; else the best intent's embedding score (0.0 without an embedder)."""
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
            (intents.digest, embedder.name if embedder else "", model if ask else "")
        )
        self._examples: tuple[Vectors, list[npt.NDArray[np.intp]]] | None = None
        self._embedding = asyncio.Lock()
        self._prompt = prompt(intents)

    async def classify(self, text: str, current: str | None = None) -> Classification:
        """`text`'s intent; `current` is the conversation's (None: none yet, or one no longer
        configured)."""
        started = time.perf_counter()
        stage, intent, score, cached = await self._classify(
            text, current if current in self.intents else None
        )
        return Classification(intent, stage, score, time.perf_counter() - started, cached)

    async def _classify(self, text: str, current: str | None) -> tuple[Stage, str, float, bool]:
        for intent in self.intents:
            if any(pattern.search(text) for pattern in intent.patterns):
                return "pattern", intent.name, 1.0, False
        unclear: tuple[Stage, str] = ("kept", current) if current else ("fallback", self.fallback)
        if not text.strip():
            return *unclear, 0.0, False
        found = await self._cache.verdict(text, self._scope) if self._cache else None
        verdict = dict(found or {})
        if self._embedder is not None and "scores" not in verdict:
            verdict["scores"] = await self._scores(self._embedder, text)
        scores: dict[str, float] = verdict.get("scores") or {}
        decided = self._by_scores(scores, current, unclear)
        if decided is None and self._ask is not None and "asked" not in verdict:
            try:
                verdict["asked"] = await self._model(self._ask, text)
            except GatewayError as exc:  # not kept: asked again next time
                log.warning("intent classification by the model failed: %s", exc.message)
        if self._cache is not None and verdict and verdict != found:
            await self._cache.keep_verdict(text, self._scope, verdict)
        if decided is None:
            decided = self._by_model(verdict.get("asked"), current) or unclear
        return *decided, max(scores.values(), default=0.0), verdict == found

    def _by_scores(
        self, scores: dict[str, float], current: str | None, unclear: tuple[Stage, str]
    ) -> tuple[Stage, str] | None:
        """The embedding stage's decision: an intent, `unclear` (the message names none, is
        ambiguous between the current intent and others, or is not clear enough to leave the
        current intent), or None (ambiguous: the model's)."""
        if not scores:
            return None
        limits = self.intents.thresholds
        ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
        (name, best), runner_up = ranked[0], ranked[1][1] if len(ranked) > 1 else 0.0
        if current is not None and name != current and best < limits.switch:
            return unclear
        if best >= limits.match and best - runner_up >= limits.margin:
            return "embedding", name
        contenders = {name for name, score in ranked if best - score < limits.margin}
        if best < limits.floor or current in contenders:
            return unclear
        return None

    def _by_model(self, answer: object, current: str | None) -> tuple[Stage, str] | None:
        """The model's answer, unless it is none, or the fallback while the conversation has
        an intent."""
        if not isinstance(answer, str) or answer not in self.intents:
            return None
        if answer == self.fallback and current is not None:
            return None
        return "model", answer

    @property
    def fallback(self) -> str:
        return self.intents.fallback

    async def _scores(self, embedder: Embedder, text: str) -> dict[str, float]:
        """Each intent with examples: the mean similarity of its nearest examples to `text`."""
        matrix, owned = await self._example_vectors(embedder)
        similarities = matrix @ await embedder.query(text)
        nearest = self.intents.thresholds.neighbours
        scores = {}
        for intent, rows in zip(self.intents, owned, strict=True):
            if rows.size:
                top = np.sort(similarities[rows])[-nearest:]
                scores[intent.name] = round(float(top.mean()), 4)
        return scores

    async def _example_vectors(
        self, embedder: Embedder
    ) -> tuple[Vectors, list[npt.NDArray[np.intp]]]:
        """Every example's vector, and which rows are each intent's; embedded at first use."""
        async with self._embedding:
            if self._examples is None:
                texts = [example for intent in self.intents for example in intent.examples]
                matrix = await embedder.documents(texts)
                owned, start = [], 0
                for intent in self.intents:
                    owned.append(np.arange(start, start + len(intent.examples), dtype=np.intp))
                    start += len(intent.examples)
                self._examples = matrix, owned
            return self._examples

    async def _model(self, ask: Ask, text: str) -> str | None:
        """The intent the model names for `text`, or None."""
        reply = await ask([*self._prompt, {"role": "user", "content": text}])
        return parse_intent(reply, self.intents.names)


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
