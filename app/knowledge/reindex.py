"""Rebuilding the vectors with another embedding model (`python -m app reindex`): every current
chunk of the catalogue and every memory embedded again into fresh collections stamped with the
model. The catalogue (the chunks' text) is the source of truth; Chroma's vectors are derived."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.config import KnowledgeSettings
from app.knowledge.catalogue import Catalogue
from app.knowledge.embedder import LocalEmbedder
from app.knowledge.memory import as_said
from app.knowledge.service import CATALOGUE_FILE, DOCUMENTS, MEMORIES, hold_lock
from app.knowledge.vectors import Metadata, VectorCollection, open_client, raw_entries, reset


async def reindex(
    settings: KnowledgeSettings, data_dir: Path, progress: Callable[[int], None]
) -> tuple[int, int, str]:
    """Chunks and memories re-embedded, and the model; `progress` is told the chunks so far."""
    embedder = await LocalEmbedder.load(settings.embedding_model, settings.embedding_batch)
    try:
        with hold_lock(data_dir, shared_server=bool(settings.chroma_host)):
            client = open_client(settings.chroma_host, settings.chroma_port, data_dir)
            memories = await raw_entries(client, MEMORIES)
            for name in (DOCUMENTS, MEMORIES):
                await reset(client, name)
            model, dimension = embedder.name, embedder.dimension
            vectors = await VectorCollection.open(client, DOCUMENTS, model, dimension)
            catalogue = Catalogue(data_dir / CATALOGUE_FILE)
            try:
                done = 0
                for batch in catalogue.all_chunks():
                    embedded = await embedder.documents([chunk.embed_text for chunk in batch])
                    metas: list[Metadata] = [
                        {
                            "owner": chunk.owner,
                            "document_id": chunk.document_id,
                            "version": int(chunk.id.rsplit("-", 2)[1]),
                        }
                        for chunk in batch
                    ]
                    await vectors.add([chunk.id for chunk in batch], embedded, metas)
                    done += len(batch)
                    progress(done)
            finally:
                catalogue.close()
            store = await VectorCollection.open(client, MEMORIES, model, dimension)
            if memories:
                texts = [text for _, text, _ in memories]
                await store.put_texts(
                    [id_ for id_, _, _ in memories],
                    await embedder.documents([as_said(text) for text in texts]),
                    texts,
                    [meta for _, _, meta in memories],
                )
    finally:
        embedder.close()
    return done, len(memories), embedder.name
