"""Hybrid ranking: the vector and keyword rankings fused by reciprocal rank, and a relevance
gate on cosine similarity, so that a question no passage answers gets none.

A keyword hit must still be about the question: it is kept only when its cosine similarity is
at least the threshold less `KEYWORD_SLACK` (an exact name or number the embedding blurs gets
that much benefit of the doubt), a vector hit when it reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Mode = Literal["hybrid", "vector", "keyword"]
RRF_K = 60
"""The constant of reciprocal rank fusion (Cormack et al.): 1 / (RRF_K + rank)."""
KEYWORD_SLACK = 0.1


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


def relevant(candidate: Candidate, threshold: float) -> bool:
    if candidate.similarity >= threshold:
        return True
    return candidate.keyword_rank is not None and candidate.similarity >= threshold - KEYWORD_SLACK


def rank(
    candidates: Sequence[Candidate], k: int, mode: Mode, threshold: float | None
) -> list[tuple[Candidate, float]]:
    """The best `k` of `candidates` with their scores: by fused rank for `hybrid`, else by the
    one ranking asked for; only relevant ones when `threshold` is given."""
    scored = [
        (candidate, rrf(candidate, mode))
        for candidate in candidates
        if threshold is None or relevant(candidate, threshold)
    ]
    scored = [(candidate, score) for candidate, score in scored if score > 0]
    scored.sort(key=lambda pair: (-pair[1], -pair[0].similarity))
    return scored[:k]
