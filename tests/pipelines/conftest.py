"""The real embedding model (loaded once per process, as the gateway loads it), counted; and a
small intents file, quick to embed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from app.knowledge.embedder import LocalEmbedder, Vectors

SMALL = r"""
fallback: other
thresholds:
  match: 0.45
  margin: 0.05
  floor: 0.25
  switch: 0.7
  neighbours: 1
intents:
  - name: safety
    description: A product that is dangerous, burning, smoking or giving electric shocks.
    urgent: true
    escalate: Keep away from it; our safety team has been alerted.
    patterns:
      - '\bon fire\b'
    examples:
      - The heater is smoking and smells of burning
      - I got an electric shock from the kettle
  - name: billing
    description: Payments, charges and invoices.
    prompt: You are the billing specialist.
    examples:
      - I was charged twice for my order
      - Can I get an invoice for my purchase?
      - How do I update my credit card?
  - name: delivery
    description: Where an order is and when it arrives.
    pipeline: agents
    examples:
      - Where is my parcel?
      - When will my order be delivered?
      - The courier lost my package
  - name: refunds
    description: Money back for returned items.
    model: openai/gpt-test
    examples:
      - I want my money back for the blender
      - How long does a refund take?
  - name: other
    description: Anything else.
    prompt: Answer briefly.
    examples:
      - What is the capital of France?
"""


class CountingEmbedder:
    """The real embedder, counting what it is asked to embed."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self._inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.window = inner.window
        self.batches: list[int] = []
        """The size of each `documents` call."""
        self.queries: list[str] = []

    async def documents(self, texts: Sequence[str]) -> Vectors:
        self.batches.append(len(texts))
        return await self._inner.documents(texts)

    async def query(self, text: str) -> Vectors:
        self.queries.append(text)
        return await self._inner.query(text)

    def describe(self) -> dict[str, Any]:
        return self._inner.describe()

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
async def embedder() -> AsyncIterator[CountingEmbedder]:
    counting = CountingEmbedder(await LocalEmbedder.load("all-MiniLM-L6-v2", 32))
    yield counting
    counting.close()


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "intents.yaml"
    path.write_text(SMALL)
    return path
