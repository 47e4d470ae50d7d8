"""Each user's documents: ingested (checked, parsed, chunked, embedded, stored), listed, deleted,
and searched by hybrid retrieval.

Storing is all or nothing, and a changed file replaces its chunks atomically: the new version's
vectors are added to Chroma first (under new chunk ids), then the catalogue swaps the chunks in
one transaction, then the old version's vectors go. A search keeps only the vector hits whose
chunk the catalogue holds, so at every moment it sees exactly one version. Content already
stored for the owner (same SHA-256) is not stored again.

The shared library (documents ingested for no user: `python -m app ingest`, the directory
index) joins every user's search when RAG_SHARED is on.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.config import KnowledgeSettings
from app.errors import RequestTooLarge
from app.knowledge.catalogue import Catalogue, ChunkRow, DocumentRow
from app.knowledge.chunk import Chunker
from app.knowledge.embedder import Embedder
from app.knowledge.parse import DocumentError, kind_of, parse
from app.knowledge.retrieval import Candidate, Mode, rank
from app.knowledge.vectors import Metadata, VectorCollection

SHARED = "shared"
"""The owner of the shared library."""
_HEAD = 8192


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    document_id: str
    name: str
    title: str
    text: str
    score: float
    similarity: float
    page: int | None
    lines: tuple[int, int] | None
    headings: tuple[str, ...]

    @property
    def location(self) -> str:
        if self.page is not None:
            return f"page {self.page}"
        if self.lines is not None:
            first, last = self.lines
            return f"line {first}" if first == last else f"lines {first}-{last}"
        return ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "document_id": self.document_id,
            "name": self.name,
            "title": self.title,
            "text": self.text,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 4),
            "page": self.page,
            "lines": list(self.lines) if self.lines else None,
            "headings": list(self.headings),
            "location": self.location,
        }


@dataclass(frozen=True, slots=True)
class Ingested:
    document: DocumentRow
    status: Literal["created", "replaced", "unchanged"]


def document_view(row: DocumentRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "document",
        "name": row.name,
        "title": row.title,
        "kind": row.kind,
        "bytes": row.bytes,
        "sha256": row.sha256,
        "chunks": row.chunks,
        "version": row.version,
        "shared": row.owner == SHARED,
        "created_at": int(row.created),
        "updated_at": int(row.updated),
    }


class Documents:
    def __init__(
        self,
        *,
        catalogue: Catalogue,
        vectors: VectorCollection,
        embedder: Embedder,
        settings: KnowledgeSettings,
    ) -> None:
        self.catalogue = catalogue
        self.vectors = vectors
        self._embedder = embedder
        self._settings = settings
        window = embedder.window.max_tokens - 2  # the model's window holds [CLS] and [SEP]
        self._chunker = Chunker(
            embedder.window.tokenizer,
            max_tokens=window,
            overlap=settings.chunk_overlap,
            target=min(settings.chunk_tokens, window),
        )
        self._writing = asyncio.Lock()
        self._with_documents: set[str] | None = None

    def scope(self, owner: str) -> list[str]:
        """Whose documents `owner` searches."""
        return [owner, SHARED] if self._settings.rag_shared and owner != SHARED else [owner]

    async def ingest(self, owner: str, name: str, data: bytes) -> Ingested:
        """`data` (the file `name`) as `owner`'s document: checked, parsed, chunked, embedded
        and stored, or refused with nothing stored."""
        limit = self._settings.max_document_bytes
        if len(data) > limit:
            raise RequestTooLarge(
                f"{name}: {len(data)} bytes is over MAX_DOCUMENT_BYTES ({limit})", param="file"
            )
        kind_of(name, data[:_HEAD])
        digest = hashlib.sha256(data).hexdigest()
        if same := await asyncio.to_thread(self.catalogue.with_hash, owner, digest):
            return Ingested(same, "unchanged")
        parsed = await asyncio.to_thread(parse, name, data)
        chunks = await asyncio.to_thread(self._chunker.chunks, parsed)
        if not chunks:
            raise DocumentError(f"{name}: the document has no text to index")
        async with self._writing:
            existing = await asyncio.to_thread(self.catalogue.named, owner, name)
            document_id = existing.id if existing else "doc-" + uuid.uuid4().hex[:20]
            version = existing.version + 1 if existing else 1
            now = time.time()
            rows = [
                ChunkRow(
                    id=f"{document_id}-{version}-{chunk.index}",
                    document_id=document_id,
                    owner=owner,
                    index=chunk.index,
                    text=chunk.text,
                    context=chunk.context,
                    page=chunk.page,
                    lines=chunk.lines,
                    headings=chunk.heading_path,
                )
                for chunk in chunks
            ]
            row = DocumentRow(
                id=document_id,
                owner=owner,
                name=name,
                title=parsed.title,
                kind=parsed.kind,
                sha256=digest,
                bytes=len(data),
                version=version,
                chunks=len(rows),
                created=existing.created if existing else now,
                updated=now,
            )
            await self._store(row, rows)
            if existing:
                await self.vectors.delete(
                    where={"$and": [{"document_id": document_id}, {"version": {"$ne": version}}]}
                )
        if self._with_documents is not None:
            self._with_documents.add(owner)
        return Ingested(row, "replaced" if existing else "created")

    async def _store(self, row: DocumentRow, rows: list[ChunkRow]) -> None:
        vectors = await self._embedder.documents([chunk.embed_text for chunk in rows])
        ids = [chunk.id for chunk in rows]
        meta: Metadata = {"owner": row.owner, "document_id": row.id, "version": row.version}
        try:
            await self.vectors.add(ids, vectors, [meta] * len(ids))
            await asyncio.to_thread(self.catalogue.put, row, rows)
        except BaseException:
            await asyncio.shield(self.vectors.delete(ids=ids))
            raise

    async def of(self, owner: str) -> list[DocumentRow]:
        return await asyncio.to_thread(self.catalogue.documents, self.scope(owner))

    async def get(self, owner: str, document_id: str) -> DocumentRow | None:
        return await asyncio.to_thread(self.catalogue.get, self.scope(owner), document_id)

    async def chunks_of(self, row: DocumentRow) -> list[dict[str, Any]]:
        chunks = await asyncio.to_thread(self.catalogue.chunks_of, row.id)
        return [
            {
                "index": chunk.index,
                "text": chunk.text,
                "page": chunk.page,
                "lines": list(chunk.lines) if chunk.lines else None,
                "headings": list(chunk.headings),
            }
            for chunk in chunks
        ]

    async def totals(self) -> dict[str, int]:
        """The whole store's documents, chunks and vectors (all owners)."""
        documents, chunks = await asyncio.to_thread(self.catalogue.total)
        return {"documents": documents, "chunks": chunks, "vectors": await self.vectors.count()}

    async def delete(self, owner: str, document_id: str) -> bool:
        """Delete `owner`'s own document (not a shared one); False when there is none."""
        row = await asyncio.to_thread(self.catalogue.get, [owner], document_id)
        if row is None:
            return False
        async with self._writing:
            await asyncio.to_thread(self.catalogue.remove, [document_id])
            await self.vectors.delete(where={"document_id": document_id})
        self._with_documents = None
        return True

    async def forget(self, owner: str) -> int:
        """Delete every document of `owner`; how many there were."""
        async with self._writing:
            rows = await asyncio.to_thread(self.catalogue.documents, [owner])
            await asyncio.to_thread(self.catalogue.remove, [row.id for row in rows])
            await self.vectors.delete(where={"owner": owner})
        self._with_documents = None
        return len(rows)

    async def any(self, owner: str) -> bool:
        """Whether `owner` has documents to search (answered from memory after the first ask)."""
        if self._with_documents is None:
            owners = await asyncio.to_thread(self.catalogue.owners)
            self._with_documents = set(owners)
        return any(who in self._with_documents for who in self.scope(owner))

    async def search(
        self, owner: str, query: str, k: int, mode: Mode = "hybrid", gate: bool = True
    ) -> list[Passage]:
        """`owner`'s `k` passages most relevant to `query`, best first; with `gate`, only those
        above RAG_THRESHOLD."""
        owners = self.scope(owner)
        if not query.strip() or not await self.any(owner):
            return []
        wanted = max(4 * k, 20)
        vector = await self._embedder.query(query)
        vector_hits = (
            await self.vectors.query(vector, wanted, _owners_filter(owners))
            if mode != "keyword"
            else []
        )
        keyword_hits = (
            await asyncio.to_thread(self.catalogue.keyword, owners, query, wanted)
            if mode != "vector"
            else []
        )
        similarity = {hit.id: hit.similarity for hit in vector_hits}
        unseen = [id_ for id_, _ in keyword_hits if id_ not in similarity]
        for id_, stored in (await self.vectors.vectors(unseen)).items():
            similarity[id_] = float(np.dot(stored, vector))
        rows = await asyncio.to_thread(
            self.catalogue.chunks, list({*similarity, *(id_ for id_, _ in keyword_hits)})
        )
        vector_rank = _ranks(hit.id for hit in vector_hits if hit.id in rows)
        keyword_rank = _ranks(id_ for id_, _ in keyword_hits if id_ in rows)
        candidates = [
            Candidate(id_, similarity.get(id_, -1.0), vector_rank.get(id_), keyword_rank.get(id_))
            for id_ in rows
        ]
        threshold = self._settings.rag_threshold if gate else None
        ranked = rank(candidates, k, mode, threshold)
        documents = await asyncio.to_thread(
            self.catalogue.by_ids, list({rows[c.id].document_id for c, _ in ranked})
        )
        return [
            _passage(
                rows[candidate.id], documents[rows[candidate.id].document_id], candidate, score
            )
            for candidate, score in ranked
            if rows[candidate.id].document_id in documents
        ]


def _owners_filter(owners: list[str]) -> dict[str, Any]:
    return {"owner": owners[0]} if len(owners) == 1 else {"owner": {"$in": owners}}


def _ranks(ids: Any) -> dict[str, int]:
    return {id_: rank for rank, id_ in enumerate(ids, start=1)}


def _passage(chunk: ChunkRow, document: DocumentRow, candidate: Candidate, score: float) -> Passage:
    return Passage(
        id=chunk.id,
        document_id=chunk.document_id,
        name=document.name,
        title=document.title,
        text=chunk.text,
        score=score,
        similarity=candidate.similarity,
        page=chunk.page,
        lines=chunk.lines,
        headings=chunk.headings,
    )
