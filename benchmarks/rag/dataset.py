"""The question set (questions.yaml) and the relevance rule the scorer applies to passages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

QUESTIONS = Path(__file__).resolve().parent / "questions.yaml"
SETS = {"first": QUESTIONS, "fresh": QUESTIONS.with_name("questions-fresh.yaml")}
"""`first`: written with the knowledge service and used to choose its chunk size and gate;
`fresh`: written afterwards by a writer who saw neither that set nor any result, and measured
once."""


@dataclass(frozen=True, slots=True)
class Question:
    """A question; `doc` and `answer` are None when no document answers it, and then `near`
    says whether it shares a product, place or organisation with the corpus."""

    id: str
    text: str
    doc: str | None = None
    answer: str | None = None
    near: bool = False


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Every question of the set: the answerable ones first, then the unanswerable ones."""
    data: dict[str, list[dict[str, Any]]] = yaml.safe_load(path.read_text("utf-8"))
    answerable = [
        Question(item["id"], item["q"], item["doc"], item["answer"]) for item in data["answerable"]
    ]
    unanswerable = [
        Question(item["id"], item["q"], near=item["near"]) for item in data["unanswerable"]
    ]
    return answerable + unanswerable


def normalise(text: str) -> str:
    """Whitespace runs collapsed to one space, so that line wrapping never matters."""
    return " ".join(text.split())


def contains_answer(passage: str, question: Question) -> bool:
    """A passage is relevant to an answerable question iff it contains the answer span."""
    return question.answer is not None and normalise(question.answer) in normalise(passage)
