"""A turn grounded in what the gateway knows about its user: the passages of their documents
and the memories relevant to the question, placed in the context before the question, and
what the user's message teaches remembered after the answer.

The grounding is one system message just before the last user message: memories first, then
the passages, numbered [1], [2], … so that the model can cite them, best first while they fit
the room (`room`: what TOKEN_BUDGET leaves after the request's own messages, and never less than
a quarter of it, since a client's long history is its own). The turn's events then start with
`Sources` (the passages, as cited) and end, after the answer, with `Remembered` when the
message changed the user's memory (the pattern table: fast, in the turn). Where a model can
(MEMORY_MODEL), it is asked for facts too, in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.chat.context import Message, TokenCounter
from app.chat.events import Event, Remembered, Sources
from app.chat.summary import Background
from app.config import KnowledgeSettings
from app.errors import GatewayError, KnowledgeUnavailable
from app.knowledge.documents import Passage
from app.knowledge.facts import Fact, Forget, extract
from app.knowledge.memory import Change
from app.knowledge.service import Grounding, Knowledge
from app.ops.observers import Observers
from app.providers.router import Route, Router

log = logging.getLogger(__name__)

MEMORY_HEADING = "What you know about the user from earlier conversations:"
PASSAGE_HEADING = (
    "Passages from the user's documents. Answer from them when they are relevant, and cite "
    "each passage you use by its number in brackets, like [1]."
)
_MEMORY_MAX_TOKENS = 256


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asks, and what they allow: `rag` (passages) and `memory` (recall and learning)."""

    owner: str
    session_id: str | None = None
    rag: bool = True
    memory: bool = True


@dataclass(frozen=True, slots=True)
class Placed:
    """A grounding as placed: its system message's text and what it holds."""

    text: str
    grounding: Grounding


NOTHING = Placed("", Grounding())


def render(grounding: Grounding, counter: TokenCounter, room: int) -> Placed:
    """The grounding's system message: memories, then passages, best first while they fit."""
    memories: list[str] = []
    passages: list[Passage] = []
    lines: list[str] = []

    def text() -> str:
        parts = []
        if memories:
            parts.append(MEMORY_HEADING + "\n" + "\n".join(f"- {m}" for m in memories))
        if lines:
            parts.append(PASSAGE_HEADING + "\n\n" + "\n\n".join(lines))
        return "\n\n".join(parts)

    def fits() -> bool:
        return counter.messages([{"role": "system", "content": text()}]) <= room

    for memory in grounding.memories:
        memories.append(memory.text)
        if not fits():
            memories.pop()
            break
    kept_memories = grounding.memories[: len(memories)]
    for passage in grounding.passages:
        lines.append(_passage_line(len(lines) + 1, passage))
        if not fits():
            lines.pop()
            break
        passages.append(passage)
    if not (memories or lines):
        return NOTHING
    return Placed(text(), Grounding(passages, list(kept_memories)))


def _passage_line(number: int, passage: Passage) -> str:
    where = ", ".join(filter(None, [passage.name, passage.location]))
    return f"[{number}] ({where})\n{passage.text.strip()}"


def placed_messages(messages: list[Message], placed: Placed) -> list[Message]:
    """`messages` with the grounding's system message before the last one."""
    if not placed.text:
        return messages
    return [*messages[:-1], {"role": "system", "content": placed.text}, messages[-1]]


def source_items(passages: list[Passage]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "index": number,
            "type": "document",
            "id": passage.id,
            "document_id": passage.document_id,
            "name": passage.name,
            "title": passage.title,
            "location": passage.location,
            "page": passage.page,
            "lines": list(passage.lines) if passage.lines else None,
            "text": passage.text,
            "score": round(passage.score, 6),
            "similarity": round(passage.similarity, 4),
            "path": f"/v1/documents/{passage.document_id}",
        }
        for number, passage in enumerate(passages, start=1)
    )


class Grounder:
    def __init__(
        self,
        *,
        knowledge: Knowledge,
        router: Router,
        background: Background,
        settings: KnowledgeSettings,
        token_budget: int,
        side_timeout: float,
        observers: Observers | None = None,
    ) -> None:
        self._knowledge = knowledge
        self._router = router
        self._background = background
        self._settings = settings
        self._budget = token_budget
        self._side_timeout = side_timeout
        self._learning: dict[str, asyncio.Lock] = {}
        self._observers = observers

    def room(self, messages: list[Message], counter: TokenCounter) -> int:
        return max(self._budget - counter.prompt(messages), self._budget // 4)

    async def recall(self, asker: Asker, question: str) -> Grounding:
        if not question.strip():
            return Grounding()
        started = time.perf_counter()
        try:
            grounding = await self._knowledge.ground(
                asker.owner, question, rag=asker.rag, memory=asker.memory
            )
        except KnowledgeUnavailable as exc:  # the turn is answered ungrounded, not refused
            log.warning("turn answered without documents and memories: %s", exc.message)
            return Grounding()
        if self._observers is not None:
            self._observers.retrieval(
                time.perf_counter() - started, len(grounding.passages), len(grounding.memories)
            )
        return grounding

    def events(
        self,
        events: AsyncIterator[Event],
        asker: Asker,
        placed: Placed,
        question: str,
        route: Route,
    ) -> AsyncIterator[Event]:
        """The turn's `events`, with the passages' `Sources` first and, after the answer, what
        the user's message taught (`Remembered`); `events` itself when there is neither."""
        learns = (
            asker.memory
            and bool(question)
            and self._settings.memory_enabled
            and self._knowledge.available
        )
        by_model = learns and self._model_learns(route)
        stated = extract(question) if learns else []
        if not (placed.grounding.passages or stated or by_model):
            return events
        return self._events(events, asker, placed, question, route, stated, by_model)

    async def _events(
        self,
        events: AsyncIterator[Event],
        asker: Asker,
        placed: Placed,
        question: str,
        route: Route,
        stated: list[Fact | Forget],
        by_model: bool,
    ) -> AsyncIterator[Event]:
        if placed.grounding.passages:
            yield Sources(source_items(placed.grounding.passages))
        async for event in events:
            yield event
        if stated and (changes := await self._learn(asker, stated)):
            yield Remembered(tuple(_change(c) for c in changes))
        if by_model:
            self._learn_with_model(asker, question, route)

    def _model_learns(self, route: Route) -> bool:
        """Whether MEMORY_MODEL has a model read the user's messages for facts: `auto`, the
        answering model when it calls functions (a sign it follows instructions); a model id,
        that model; `none` or empty, no model."""
        setting = self._settings.memory_model
        if setting in ("", "none"):
            return False
        return setting != "auto" or route.provider.capabilities.tools

    async def _learn(self, asker: Asker, stated: list[Fact | Forget]) -> list[Change]:
        try:
            return await self._knowledge.memories.learn(asker.owner, asker.session_id, stated)
        except GatewayError as exc:
            log.warning("memory not updated: %s", exc.message)
            return []

    def _learn_with_model(self, asker: Asker, question: str, route: Route) -> None:
        setting = self._settings.memory_model

        async def learn() -> None:
            model = route if setting == "auto" else await self._router.resolve(setting)

            async def ask(messages: list[dict[str, str]]) -> str:
                return await self._router.ask(
                    model, messages, max_tokens=_MEMORY_MAX_TOKENS, within=self._side_timeout
                )

            try:
                async with self._learning.setdefault(asker.owner, asyncio.Lock()):
                    changes = await self._knowledge.memories.learn_with_model(
                        asker.owner, asker.session_id, question, ask
                    )
            except GatewayError as exc:
                log.info("no model-assisted memory from %s: %s", model.id, exc.message)
                return
            if changes:
                log.info("memory of %s: %d changes by %s", asker.owner, len(changes), model.id)

        # one after the other per user, each seeing what the last one stored
        self._background.start(f"memory:{asker.owner}:{uuid.uuid4().hex}", learn)


def _change(change: Change) -> dict[str, str]:
    return {"event": change.event, "id": change.id, "text": change.text}
