"""Each user's long-term memory: facts from the user's own words, kept in Chroma with their
embeddings, the time they were learnt and changed, and the session that taught them.

After a turn, `learn` reads the user's message with the pattern table (`facts.extract`) and
applies the changes as mem0 does — add, update, delete or keep against what is stored
(`facts.decide`) — so that "I moved to Berlin" replaces "I live in Paris" rather than sitting
beside it. Where a model can (`MEMORY_MODEL`), `learn_with_model` asks it for the facts and the
decisions as well, in the background. `recall` gives the memories relevant to a message.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.knowledge.embedder import Embedder
from app.knowledge.facts import (
    Add,
    Decision,
    Delete,
    Fact,
    Forget,
    Keep,
    Stored,
    Update,
    decide,
    extract,
    extraction_messages,
    parse_extraction,
    parse_update,
    update_messages,
)
from app.knowledge.vectors import VectorCollection

log = logging.getLogger(__name__)

Ask = Callable[[list[dict[str, str]]], Awaitable[str]]
"""A side question to a model: messages in, the reply's text out."""


@dataclass(frozen=True, slots=True)
class Memory:
    id: str
    text: str
    slot: str | None
    session_id: str | None
    created: float
    updated: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "memory",
            "text": self.text,
            "slot": self.slot,
            "session_id": self.session_id,
            "created_at": int(self.created),
            "updated_at": int(self.updated),
        }


@dataclass(frozen=True, slots=True)
class Change:
    event: str
    """`add`, `update` or `delete`."""
    id: str
    text: str


_SPEAKER = (
    (re.compile(r"\bthe user's\b", re.IGNORECASE), "my"),
    (re.compile(r"\bthe user\b", re.IGNORECASE), "I"),
    (re.compile(r"\btheir\b"), "my"),
)


def as_said(text: str) -> str:
    """A fact as the user would say it ("The user lives in Berlin." → "I lives in Berlin."),
    the form embedded: a question is asked in the first person, and MiniLM finds "Where do I
    live?" far nearer to that than to the third person (measured on the memory script: the
    current fact's median similarity to its probe rose by about 0.07)."""
    for pattern, word in _SPEAKER:
        text = pattern.sub(word, text)
    return text


class Memories:
    def __init__(self, vectors: VectorCollection, embedder: Embedder, threshold: float) -> None:
        self.vectors = vectors
        self._embedder = embedder
        self._threshold = threshold
        self._owners: dict[str, bool] = {}

    async def of(self, owner: str) -> list[Memory]:
        found = await self.vectors.get({"owner": owner})
        memories = [_memory(id_, text, meta) for id_, text, meta in found]
        self._owners[owner] = bool(memories)
        return sorted(memories, key=lambda memory: memory.created)

    async def any(self, owner: str) -> bool:
        if owner not in self._owners:
            await self.of(owner)
        return self._owners[owner]

    async def recall(self, owner: str, text: str, k: int) -> list[Memory]:
        """`owner`'s memories most relevant to `text`, at most `k`, best first."""
        if not text.strip() or not await self.any(owner):
            return []
        vector = await self._embedder.query(text)
        hits = await self.vectors.query(vector, k, {"owner": owner})
        return [
            _memory(hit.id, hit.document, hit.metadata)
            for hit in hits
            if hit.similarity >= self._threshold
        ]

    async def add(self, owner: str, text: str, session_id: str | None = None) -> list[Change]:
        """`text` remembered for `owner` as it is said: its facts by the pattern table when it
        has any (so an explicit "I live in Rome" also replaces the old home), else as is."""
        found = [change for change in extract(text) if isinstance(change, Fact)]
        facts: list[Fact | Forget] = [*found] or [Fact(text.strip(), None)]
        known = await self.of(owner)
        return await self._apply(owner, session_id, decide(facts, _stored(known)), known)

    async def learn(
        self, owner: str, session_id: str | None, changes: list[Fact | Forget]
    ) -> list[Change]:
        """What a user's message says (`facts.extract`) applied to `owner`'s memory."""
        if not changes:
            return []
        known = await self.of(owner)
        return await self._apply(owner, session_id, decide(changes, _stored(known)), known)

    async def learn_with_model(
        self, owner: str, session_id: str | None, text: str, ask: Ask
    ) -> list[Change]:
        """The facts a model finds in `text`, applied with the decisions it makes against what is
        stored (mem0's two questions)."""
        facts = parse_extraction(await ask(extraction_messages(text, time.strftime("%Y-%m-%d"))))
        if not facts:
            return []
        known = await self.of(owner)
        stored = _stored(known)
        decisions = parse_update(await ask(update_messages(facts, stored)), stored)
        return await self._apply(owner, session_id, decisions, known)

    async def _apply(
        self, owner: str, session_id: str | None, decisions: list[Decision], memories: list[Memory]
    ) -> list[Change]:
        """`decisions` about `memories` (`owner`'s, as the decisions were made on them)."""
        now = time.time()
        known = {memory.id: memory for memory in memories}
        writes: list[tuple[str, Fact, float]] = []
        deletes: list[str] = []
        changes: list[Change] = []
        for decision in decisions:
            match decision:
                case Add(fact=fact):
                    id_ = "mem-" + uuid.uuid4().hex[:20]
                    writes.append((id_, fact, now))
                    changes.append(Change("add", id_, fact.text))
                case Update(id=id_, fact=fact) if id_ in known:
                    writes.append((id_, fact, known[id_].created))
                    changes.append(Change("update", id_, fact.text))
                case Delete(id=id_) if id_ in known:
                    deletes.append(id_)
                    changes.append(Change("delete", id_, known[id_].text))
                case Keep() | Update() | Delete():
                    pass
        if writes:
            vectors = await self._embedder.documents([as_said(fact.text) for _, fact, _ in writes])
            await self.vectors.put_texts(
                [id_ for id_, _, _ in writes],
                vectors,
                [fact.text for _, fact, _ in writes],
                [
                    {
                        "owner": owner,
                        "slot": fact.slot or "",
                        "session_id": session_id or "",
                        "created": created,
                        "updated": now,
                    }
                    for _, fact, created in writes
                ],
            )
        if deletes:
            await self.vectors.delete(ids=deletes)
        self._owners.pop(owner, None)
        return changes

    async def delete(self, owner: str, memory_id: str) -> bool:
        if memory_id not in {memory.id for memory in await self.of(owner)}:
            return False
        await self.vectors.delete(ids=[memory_id])
        self._owners.pop(owner, None)
        return True

    async def forget(self, owner: str) -> int:
        count = len(await self.of(owner))
        await self.vectors.delete(where={"owner": owner})
        self._owners[owner] = False
        return count


def _stored(memories: list[Memory]) -> list[Stored]:
    return [Stored(m.id, Fact(m.text, m.slot)) for m in memories]


def _memory(id_: str, text: str, meta: dict[str, Any]) -> Memory:
    return Memory(
        id=id_,
        text=text,
        slot=str(meta.get("slot") or "") or None,
        session_id=str(meta.get("session_id") or "") or None,
        created=float(meta.get("created") or 0),
        updated=float(meta.get("updated") or 0),
    )
