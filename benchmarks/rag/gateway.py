"""The gateway's knowledge service as a system under test: one owner's documents, searched in
`vector`, `bm25` (keyword), `hybrid` and `hybrid+threshold` (hybrid behind RAG_THRESHOLD, as a
chat turn retrieves) modes, top 10, on an embedded Chroma in a temporary DATA_DIR."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from app.config import load_settings
from app.knowledge.documents import Documents
from app.knowledge.retrieval import Mode
from app.knowledge.service import open_knowledge
from app.providers.router import Router
from benchmarks.rag.index import Passage

OWNER = "benchmark"
TOP_K = 10
MODES: dict[str, tuple[Mode, bool]] = {
    "vector": ("vector", False),
    "bm25": ("keyword", False),
    "hybrid": ("hybrid", False),
    "hybrid+threshold": ("hybrid", True),
}


class GatewayIndex:
    """One owner's documents in the gateway's knowledge service."""

    def __init__(self, documents: Documents) -> None:
        self._documents = documents
        self._names: dict[str, str] = {}

    async def ingest(self, filename: str, data: bytes) -> None:
        ingested = await self._documents.ingest(OWNER, filename, data)
        self._names[ingested.document.id] = filename

    async def passages(self) -> list[Passage]:
        catalogue = self._documents.catalogue
        return [
            Passage(chunk.id, name, chunk.text)
            for document_id, name in self._names.items()
            for chunk in await asyncio.to_thread(catalogue.chunks_of, document_id)
        ]

    async def search(self, config: str, query: str) -> list[Passage]:
        mode, gate = MODES[config]
        found = await self._documents.search(OWNER, query, TOP_K, mode=mode, gate=gate)
        return [Passage(p.id, p.name, p.text, p.similarity) for p in found]


@asynccontextmanager
async def open_index() -> AsyncIterator[GatewayIndex]:
    """The knowledge service with its default settings on a fresh data directory."""
    with tempfile.TemporaryDirectory(prefix="rag-benchmark-") as directory:
        settings = load_settings(None, data_dir=Path(directory), chroma_host="", rag_shared=False)
        router = Router([], settings.providers)
        async with open_knowledge(
            settings.knowledge, settings.server.data_dir, router
        ) as knowledge:
            yield GatewayIndex(knowledge.documents)
