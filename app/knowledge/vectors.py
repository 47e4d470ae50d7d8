"""Vectors in Chroma: an embedded `PersistentClient` under `DATA_DIR/chroma` when CHROMA_HOST is
unset, a Chroma server's `HttpClient` otherwise; everything above `open_client` is one code path.

A collection is made for one embedding model: its name and dimension are stored in the
collection's metadata, and opening it with another model is an `IndexMismatch` naming the
command that rebuilds it. Calls are blocking (Chroma's client is synchronous) and run in a
worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from app.errors import IndexMismatch, KnowledgeUnavailable

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from app.knowledge.embedder import Vectors

log = logging.getLogger(__name__)

T = TypeVar("T")
REINDEX_COMMAND = "python -m app reindex"
Metadata = Mapping[str, str | int | float | bool]


def open_client(host: str, port: int, data_dir: Path) -> ClientAPI:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    try:
        if host:
            return chromadb.HttpClient(host=host, port=port, settings=settings)
        path = data_dir / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as exc:  # chromadb raises plain exceptions for an unreachable server
        where = f"the Chroma server at {host}:{port}" if host else f"Chroma in {data_dir}"
        raise KnowledgeUnavailable(f"{where} cannot be opened: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    similarity: float
    metadata: dict[str, Any]
    document: str


class VectorCollection:
    def __init__(self, collection: Collection) -> None:
        self._collection = collection

    @classmethod
    async def open(
        cls, client: ClientAPI, name: str, model: str, dimension: int
    ) -> VectorCollection:
        def get() -> Collection:
            collection = client.get_or_create_collection(
                name,
                metadata={"hnsw:space": "cosine", "embedding_model": model, "dimension": dimension},
                embedding_function=None,
            )
            meta = collection.metadata or {}
            stored = (meta.get("embedding_model"), meta.get("dimension"))
            if stored != (model, dimension):
                raise IndexMismatch(
                    f"the collection '{name}' holds vectors of {stored[0]} ({stored[1]} "
                    f"dimensions), but the embedder is {model} ({dimension} dimensions): "
                    f"run `{REINDEX_COMMAND}` to re-embed it with {model}"
                )
            return collection

        return cls(await _call(get))

    async def add(
        self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]
    ) -> None:
        if not ids:
            return
        await _call(
            lambda: self._collection.upsert(
                ids=list(ids),
                embeddings=vectors,
                metadatas=list(metadatas),
            )
        )

    async def query(
        self, vector: Vectors, n: int, where: dict[str, Any] | None, *, texts: bool = True
    ) -> list[Hit]:
        """The `n` nearest, best first, with their cosine similarity (and, with `texts`, their
        documents and metadata)."""

        def run() -> list[Hit]:
            found = self._collection.query(
                query_embeddings=cast(Any, [vector]),
                n_results=n,
                where=where,
                include=["distances", "metadatas", "documents"] if texts else ["distances"],
            )
            ids = found["ids"][0]
            distances = (found["distances"] or [[]])[0]
            metas = (found["metadatas"] or [[{}] * len(ids)])[0]
            documents = (found["documents"] or [[""] * len(ids)])[0]
            return [
                Hit(id_, 1.0 - float(distance), dict(meta or {}), document or "")
                for id_, distance, meta, document in zip(
                    ids, distances, metas, documents, strict=True
                )
            ]

        return await _call(run)

    async def vectors(self, ids: Sequence[str]) -> dict[str, Vectors]:
        if not ids:
            return {}

        def run() -> dict[str, Vectors]:
            found = self._collection.get(ids=list(ids), include=["embeddings"])
            embeddings = found["embeddings"]
            if embeddings is None:
                return {}
            return {
                id_: np.asarray(vector, dtype=np.float32)
                for id_, vector in zip(found["ids"], embeddings, strict=True)
            }

        return await _call(run)

    async def get(self, where: dict[str, Any] | None) -> list[tuple[str, str, dict[str, Any]]]:
        """Every (id, document, metadata) matching `where` (None: all)."""

        def run() -> list[tuple[str, str, dict[str, Any]]]:
            found = self._collection.get(where=where, include=["documents", "metadatas"])
            documents = found["documents"] or [""] * len(found["ids"])
            metas = found["metadatas"] or [{}] * len(found["ids"])
            return [
                (id_, doc or "", dict(meta or {}))
                for id_, doc, meta in zip(found["ids"], documents, metas, strict=True)
            ]

        return await _call(run)

    async def put_texts(
        self, ids: Sequence[str], vectors: Vectors, texts: Sequence[str], metas: Sequence[Metadata]
    ) -> None:
        await _call(
            lambda: self._collection.upsert(
                ids=list(ids),
                embeddings=vectors,
                documents=list(texts),
                metadatas=list(metas),
            )
        )

    async def delete(self, *, ids: Sequence[str] = (), where: dict[str, Any] | None = None) -> None:
        if ids:
            await _call(lambda: self._collection.delete(ids=list(ids)))
        if where is not None:
            await _call(lambda: self._collection.delete(where=where))

    async def count(self, where: dict[str, Any] | None = None) -> int:
        if where is None:
            return await _call(self._collection.count)
        return len(await _call(lambda: self._collection.get(where=where, include=[])["ids"]))


async def _call(work: Callable[[], T]) -> T:
    try:
        result: T = await asyncio.to_thread(work)
    except (IndexMismatch, KnowledgeUnavailable):
        raise
    except Exception as exc:  # chromadb's errors are plain exceptions of many kinds
        raise KnowledgeUnavailable(f"Chroma failed: {type(exc).__name__}: {exc}") from exc
    return result


class Shelves:
    """A collection per owner (`<prefix>-<hash of the owner>`), so that a search reads one
    owner's vectors without a metadata filter: Chroma filters by building the set of matching
    ids first, which at 100k of one owner's chunks cost more than the search itself."""

    def __init__(self, client: ClientAPI, prefix: str, model: str, dimension: int) -> None:
        self._client = client
        self._prefix = prefix
        self._model = model
        self._dimension = dimension
        self._open: dict[str, VectorCollection] = {}

    def _name(self, owner: str) -> str:
        return f"{self._prefix}-{hashlib.sha256(owner.encode()).hexdigest()[:40]}"

    async def of(self, owner: str) -> VectorCollection:
        """`owner`'s collection, made when it has none."""
        found = self._open.get(owner)
        if found is None:
            found = await VectorCollection.open(
                self._client, self._name(owner), self._model, self._dimension
            )
            self._open[owner] = found
        return found

    async def drop(self, owner: str) -> None:
        self._open.pop(owner, None)
        await reset(self._client, self._name(owner))

    async def names(self) -> list[str]:
        listed = await _call(self._client.list_collections)
        return [c.name for c in listed if c.name.startswith(self._prefix + "-")]

    async def check(self) -> None:
        """An `IndexMismatch` when any owner's collection holds another model's vectors."""
        for name in await self.names():
            await VectorCollection.open(self._client, name, self._model, self._dimension)

    async def heartbeat(self) -> int:
        """How many owners' collections there are: one request, for health probes."""
        return len(await self.names())

    async def count(self) -> int:
        total = 0
        for name in await self.names():
            collection = await VectorCollection.open(
                self._client, name, self._model, self._dimension
            )
            total += await collection.count()
        return total

    async def reset_all(self) -> None:
        self._open.clear()
        for name in await self.names():
            await reset(self._client, name)


async def reset(client: ClientAPI, name: str) -> None:
    """Drop collection `name` if it exists (to rebuild it for another embedding model)."""

    def run() -> None:
        try:
            client.delete_collection(name)
        except Exception as exc:  # a missing collection: nothing to drop
            log.debug("collection %s not dropped: %s", name, exc)

    await asyncio.to_thread(run)


async def raw_entries(client: ClientAPI, name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (id, document, metadata) of collection `name`, whatever model made it; none when
    it does not exist."""

    def find() -> VectorCollection | None:
        try:
            return VectorCollection(client.get_collection(name, embedding_function=None))
        except Exception:  # no such collection
            return None

    found = await asyncio.to_thread(find)
    return [] if found is None else await found.get(None)
