"""What the scorer needs from a retrieval system under test, whatever it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Passage:
    """One stored chunk: its id in the system under test, the file it came from, its text, and
    (in search results) its cosine similarity to the query when the system reports one."""

    id: str
    filename: str
    text: str
    similarity: float | None = None


class Index(Protocol):
    """A system that ingests the corpus once and then answers queries in each of its configs
    (evaluate.SYSTEM_OF names them)."""

    async def ingest(self, filename: str, data: bytes) -> None:
        """Parse, chunk, embed and store one document."""
        ...

    async def passages(self) -> list[Passage]:
        """Every passage the corpus was chunked into (the qrels are drawn from these)."""
        ...

    async def search(self, config: str, query: str) -> list[Passage]:
        """The passages `config` retrieves for `query`, best first (possibly none)."""
        ...
