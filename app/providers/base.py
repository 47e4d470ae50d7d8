"""What every provider offers the router.

A provider speaks one upstream's wire format and hides it: requests arrive as an OpenAI chat body,
or a completions body of one prompt for a raw completion (with `model` already the provider's own,
bare name), and answers leave as OpenAI `chat.completion.chunk` dicts. A provider translates its
transport's errors into `app.errors` once, at its boundary, and never retries: retries, fallback
and circuit breaking belong to the router.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

Chunk = dict[str, Any]
"""An OpenAI `chat.completion.chunk` body. `id`, `model`, `created` and `object` may be absent:
the chat service stamps its own. A chunk with `choices: []` and `usage` carries token counts."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    multiple_choices: bool = False
    embeddings: bool = True
    custom_tools: bool = False
    """OpenAI's free-form `custom` tools, beside function tools."""


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


class Provider(Protocol):
    name: str
    capabilities: Capabilities

    async def list_models(self) -> list[str]:
        """The bare model names this provider serves now."""
        ...

    def embedding_only(self, model: str) -> bool:
        """Whether `model` only embeds (no chat): known from the last `list_models()` where the
        upstream says, else guessed from the name (`looks_like_embedding`)."""
        ...

    def stream_chat(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        """Stream one chat completion. Before the first chunk, failures raise retryable or not
        as `app.errors` says; the stream ends after the chunk that carries `finish_reason`, and
        may add one usage chunk. Closing the iterator early cancels the upstream request.
        `background`: a background task, which a provider that serves one generation at a
        time puts behind users' turns."""
        ...

    def stream_completion(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        """Stream the raw completion of `body["prompt"]` (one string), continued as is: no chat
        template, no persona. `body` is an OpenAI completions request; the chunks are shaped as
        `stream_chat`'s (the text in `delta.content`). Raises `NoCompletions` when the upstream
        (or the model) has no such operation, as `stream_chat` would fail otherwise."""
        ...

    async def embed(
        self, model: str, inputs: list[str] | list[list[int]], dimensions: int | None
    ) -> Embeddings: ...

    async def health(self) -> str:
        """A short description of the upstream when it is healthy; raises an `UpstreamError`
        when it is not."""
        ...

    async def aclose(self) -> None: ...


_EMBEDDING_NAME = re.compile(r"embed|all-minilm|(?:^|[/:_.\-])(?:bge|e5|gte)-", re.IGNORECASE)


def looks_like_embedding(model: str) -> bool:
    """Whether a model's name is an embedding model's (`text-embedding-3-small`,
    `nomic-embed-text`, `bge-m3`, `intfloat/e5-large`, `all-minilm`, ...), for upstreams whose
    model lists do not say."""
    return _EMBEDDING_NAME.search(model) is not None
