"""Hybrid ranking: the vector and keyword rankings fused by reciprocal rank, and a relevance
gate on cosine similarity, so that a question no document is about gets no passages.

The gate is the question's: it gets passages only when its best candidate (vector or keyword
hit alike, each scored by its cosine similarity to the question) reaches the threshold; then
the candidates within `SPREAD` below the threshold stay too, since a passage that answers often
scores a little lower than one that merely shares the subject. Measured on the retrieval test
set (docs/PERFORMANCE.md): a gate per passage lets questions about nothing in the documents
through on a keyword hit or a weak neighbour, the question's gate does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Mode = Literal["hybrid", "vector", "keyword"]
RRF_K = 60
"""The constant of reciprocal rank fusion (Cormack et al.): 1 / (RRF_K + rank)."""
SPREAD = 0.15


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    similarity: float
    """Cosine similarity of the chunk's vector to the question's."""
    vector_rank: int | None
    """1-based rank in the vector search, None when it did not find it."""
    keyword_rank: int | None


def rrf(candidate: Candidate, mode: Mode) -> float:
    score = 0.0
    if candidate.vector_rank is not None and mode != "keyword":
        score += 1.0 / (RRF_K + candidate.vector_rank)
    if candidate.keyword_rank is not None and mode != "vector":
        score += 1.0 / (RRF_K + candidate.keyword_rank)
    return score


def rank(
    candidates: Sequence[Candidate], k: int, mode: Mode, threshold: float | None
) -> list[tuple[Candidate, float]]:
    """The best `k` of `candidates` with their scores: by fused rank for `hybrid`, else by the
    one ranking asked for; with a `threshold`, none unless the best reaches it."""
    if threshold is not None:
        best = max((candidate.similarity for candidate in candidates), default=-1.0)
        floor = threshold - SPREAD if best >= threshold else 2.0
        candidates = [candidate for candidate in candidates if candidate.similarity >= floor]
    scored = [(candidate, rrf(candidate, mode)) for candidate in candidates]
    scored = [(candidate, score) for candidate, score in scored if score > 0]
    scored.sort(key=lambda pair: (-pair[1], -pair[0].similarity))
    return scored[:k]
