"""Knowledge, opened once with the gateway: the embedder, the catalogue and keyword index
(SQLite), the vectors (Chroma), each user's documents and memories, and the directory index
jobs. `ground` is what a turn asks for: the passages and memories relevant to its question.

When the embedder cannot load (and no fallback is configured) or Chroma cannot be opened, the
gateway still serves chats without grounding; the knowledge routes answer 503 with the reason,
and `/health` says it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import KnowledgeSettings
from app.errors import KnowledgeUnavailable
from app.knowledge.catalogue import Catalogue
from app.knowledge.documents import Documents, Passage
from app.knowledge.embedder import Embedder, LocalEmbedder, open_embedder
from app.knowledge.memory import Memories, Memory
from app.knowledge.vectors import Shelves, VectorCollection, open_client
from app.providers.router import Router

log = logging.getLogger(__name__)

DOCUMENTS = "gateway-documents"
"""The prefix of each owner's collection of document chunks."""
MEMORIES = "gateway_memories"
LOCK_NAME = "knowledge.lock"
_PROBE_TIMEOUT = 3.0
CATALOGUE_FILE = "knowledge.sqlite3"


@dataclass(frozen=True, slots=True)
class Grounding:
    passages: list[Passage] = field(default_factory=list)
    memories: list[Memory] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.passages or self.memories)


@dataclass(slots=True)
class Knowledge:
    settings: KnowledgeSettings
    embedder: Embedder | None = None
    _documents: Documents | None = None
    _memories: Memories | None = None
    reason: str = ""
    """Why knowledge is unavailable, when it is."""

    @property
    def documents(self) -> Documents:
        if self._documents is None:
            raise KnowledgeUnavailable(f"documents are unavailable: {self.reason}")
        return self._documents

    @property
    def memories(self) -> Memories:
        if self._memories is None:
            raise KnowledgeUnavailable(f"memories are unavailable: {self.reason}")
        return self._memories

    @property
    def available(self) -> bool:
        return self._documents is not None

    @property
    def wanted(self) -> bool:
        """Whether the settings ask for knowledge at all."""
        return self.settings.rag_enabled or self.settings.memory_enabled

    async def ground(self, owner: str, question: str, *, rag: bool, memory: bool) -> Grounding:
        """The passages (RAG_TOP_K, above RAG_THRESHOLD) and memories (MEMORY_TOP_K, above
        MEMORY_THRESHOLD) of `owner` relevant to `question`."""
        if not self.available:
            return Grounding()
        settings = self.settings
        documents, memories = self.documents, self.memories
        wants_passages = rag and settings.rag_enabled and await documents.any(owner)
        wants_memories = memory and settings.memory_enabled and await memories.any(owner)
        if not (wants_passages and wants_memories):  # one of them at most: no task to make
            if wants_passages:
                return Grounding(await documents.search(owner, question, settings.rag_top_k))
            if wants_memories:
                return Grounding([], await memories.recall(owner, question, settings.memory_top_k))
            return Grounding()
        # together, so that the two embeddings of the question go to the model as one batch
        passages, recalled = await asyncio.gather(
            documents.search(owner, question, settings.rag_top_k),
            memories.recall(owner, question, settings.memory_top_k),
        )
        return Grounding(passages, recalled)

    async def leftovers(self, owner: str) -> dict[str, int]:
        """What each store still holds of `owner` (nothing, after `forget`)."""
        documents, memories = self.documents, self.memories
        catalogue = documents.catalogue
        counts = {
            "chroma_document_vectors": await (await documents.vectors.of(owner)).count(),
            "chroma_memories": await memories.vectors.count({"owner": owner}),
            "keyword_index_rows": await asyncio.to_thread(catalogue.indexed, owner),
            "catalogue_documents": (await asyncio.to_thread(catalogue.counts, [owner]))[0],
        }
        return {name: count for name, count in counts.items() if count}

    def queued(self) -> int | None:
        """Texts waiting for the local embedder (None: no local embedder)."""
        return self.embedder.queued if isinstance(self.embedder, LocalEmbedder) else None

    async def health(self) -> dict[str, Any]:
        """The embedder in use, probed by embedding a word: `{"status", "details",
        "latency_ms", "embedder": {kind, model, dimension}}`."""
        if self.embedder is None:
            return {
                "status": "unhealthy",
                "details": self.reason,
                "latency_ms": None,
                "embedder": None,
            }
        detail = self.embedder.describe()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.embedder.query("health"), _PROBE_TIMEOUT)
        except TimeoutError:
            status, details = "unhealthy", f"no vector within {_PROBE_TIMEOUT:g} s"
        except Exception as exc:  # whatever the model or the provider raises is the answer
            status, details = "unhealthy", f"{type(exc).__name__}: {exc}"
        else:
            status = "healthy"
            details = f"{detail['kind']} model {detail['model']}, {detail['dimension']} dims"
        latency = round((time.perf_counter() - started) * 1000, 1)
        return {"status": status, "details": details, "latency_ms": latency, "embedder": detail}

    async def store_health(self) -> dict[str, Any]:
        """Chroma: does it answer (`{"status", "details", "latency_ms"}`), in one request."""
        where = self.settings.chroma_host or "embedded"
        if self._documents is None:
            return {"status": "unhealthy", "details": self.reason, "latency_ms": None}
        started = time.perf_counter()
        try:
            owners = await asyncio.wait_for(self._documents.vectors.heartbeat(), _PROBE_TIMEOUT)
        except (KnowledgeUnavailable, TimeoutError) as exc:
            detail = str(exc) or f"no answer within {_PROBE_TIMEOUT:g} s"
            status = "unhealthy"
        else:
            detail, status = f"{where}, {owners} document collections", "healthy"
        latency = round((time.perf_counter() - started) * 1000, 1)
        return {"status": status, "details": detail, "latency_ms": latency}


@asynccontextmanager
async def open_knowledge(
    settings: KnowledgeSettings, data_dir: Path, router: Router
) -> AsyncIterator[Knowledge]:
    """Knowledge on `data_dir` (the catalogue, and Chroma there unless CHROMA_HOST is set)."""
    knowledge = Knowledge(settings)
    if not (settings.rag_enabled or settings.memory_enabled):
        knowledge.reason = "RAG_ENABLED and MEMORY_ENABLED are off"
        yield knowledge
        return
    async with AsyncExitStack() as stack:
        started = time.perf_counter()
        embedder, reason = await open_embedder(
            settings.embedding_model,
            settings.embedding_fallback_model,
            settings.embedding_batch,
            router,
        )
        knowledge.embedder = embedder
        if embedder is None:
            knowledge.reason = reason
            yield knowledge
            return
        stack.callback(embedder.close)
        try:
            stack.enter_context(hold_lock(data_dir, shared_server=bool(settings.chroma_host)))
            client = open_client(settings.chroma_host, settings.chroma_port, data_dir)
            documents = Shelves(client, DOCUMENTS, embedder.name, embedder.dimension)
            await documents.check()
            memories = await VectorCollection.open(
                client, MEMORIES, embedder.name, embedder.dimension
            )
        except KnowledgeUnavailable as exc:
            log.error("knowledge is unavailable: %s", exc.message)
            knowledge.reason = exc.message
            yield knowledge
            return
        catalogue = Catalogue(data_dir / CATALOGUE_FILE)
        stack.callback(catalogue.close)
        knowledge._documents = Documents(
            catalogue=catalogue, vectors=documents, embedder=embedder, settings=settings
        )
        knowledge._memories = Memories(memories, embedder, settings.memory_threshold)
        where = (
            f"{settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else "embedded"
        )
        log.info(
            "knowledge ready in %.1f s: Chroma %s, %d documents",
            time.perf_counter() - started,
            where,
            catalogue.total()[0],
        )
        yield knowledge


@contextmanager
def hold_lock(data_dir: Path, *, shared_server: bool) -> Iterator[None]:
    """An exclusive lock on the embedded store of `data_dir` for this process: an embedded
    Chroma is safe for one process at a time (a Chroma server, `shared_server`, needs none)."""
    if shared_server:
        yield
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KnowledgeUnavailable(
                f"another process (a running gateway?) uses the embedded store in {data_dir}: "
                "stop it, upload through POST /v1/documents, or set CHROMA_HOST"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
