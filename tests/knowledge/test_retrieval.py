"""Reciprocal rank fusion and the relevance gate."""

from __future__ import annotations

from app.knowledge.retrieval import SPREAD, Candidate, rank


def test_hybrid_fuses_both_rankings() -> None:
    both = Candidate("both", 0.6, vector_rank=2, keyword_rank=2)
    vector = Candidate("vector", 0.7, vector_rank=1, keyword_rank=None)
    keyword = Candidate("keyword", 0.5, vector_rank=None, keyword_rank=1)
    ranked = [c.id for c, _ in rank([vector, keyword, both], 3, "hybrid", None)]
    assert ranked == ["both", "vector", "keyword"]
    assert [c.id for c, _ in rank([vector, keyword, both], 3, "vector", None)] == ["vector", "both"]
    assert [c.id for c, _ in rank([vector, keyword, both], 3, "keyword", None)] == [
        "keyword",
        "both",
    ]


def test_a_question_gets_passages_only_when_its_best_reaches_the_threshold() -> None:
    threshold = 0.4
    weak = Candidate("weak", 0.2, vector_rank=2, keyword_rank=None)
    near = Candidate("near", threshold - SPREAD / 2, vector_rank=None, keyword_rank=1)
    best = Candidate("best", threshold + 0.01, vector_rank=1, keyword_rank=None)
    kept = [c.id for c, _ in rank([weak, near, best], 5, "hybrid", threshold)]
    assert kept == ["best", "near"]
    assert rank([weak, near], 5, "hybrid", threshold) == []
    assert [c.id for c, _ in rank([weak, near], 5, "hybrid", None)] == ["near", "weak"]


def test_k_bounds_the_result() -> None:
    many = [Candidate(str(i), 0.9, vector_rank=i + 1, keyword_rank=None) for i in range(10)]
    assert [c.id for c, _ in rank(many, 3, "hybrid", 0.5)] == ["0", "1", "2"]
