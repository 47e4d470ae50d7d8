"""The retrieval benchmark's dataset is valid: a mixed corpus, and in each question set every
answer span where it should be (in its document's extracted text, within one page, in no other
document, and in the text OpenWebUI's loader makes of it, so the baseline can find it too)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.rag.build import build, documents
from benchmarks.rag.dataset import SETS, Question, contains_answer, load_questions, normalise
from benchmarks.rag.extract import Page, pages
from benchmarks.rag.owui import CHUNK_CHARS, Splitter, load

KINDS = {
    "pdf": ("pdf",),
    "docx": ("docx",),
    "markdown": ("md",),
    "html": ("html",),
    "text": ("txt",),
    "data": ("json", "csv"),
    "code": ("py", "js"),
}
MINIMUM = {"pdf": 6, "docx": 5, "markdown": 8, "html": 5, "text": 5, "data": 3, "code": 5}


@pytest.fixture(scope="module")
def built() -> dict[str, bytes]:
    return dict(documents())


@pytest.fixture(scope="module")
def corpus(built: dict[str, bytes]) -> dict[str, list[Page]]:
    return {name: pages(name, data) for name, data in built.items()}


@pytest.fixture(scope="module", params=sorted(SETS))
def questions(request: pytest.FixtureRequest) -> list[Question]:
    return load_questions(SETS[request.param])


def kind(filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1]
    return next(name for name, suffixes in KINDS.items() if suffix in suffixes)


def test_the_corpus_mixes_every_kind(corpus: dict[str, list[Page]]) -> None:
    counts = Counter(kind(name) for name in corpus)
    assert len(corpus) >= 44
    assert all(counts[name] >= minimum for name, minimum in MINIMUM.items()), counts
    long_pdfs = [name for name, document in corpus.items() if len(document) >= 4]
    assert len(long_pdfs) >= 3, "chunking must matter: several PDFs of 4 pages or more"


def test_the_build_is_reproducible(built: dict[str, bytes], tmp_path: Path) -> None:
    assert {path.name: path.read_bytes() for path in build(tmp_path)} == built


def test_the_questions_cover_every_document(
    corpus: dict[str, list[Page]], questions: list[Question]
) -> None:
    answerable = [question for question in questions if question.doc is not None]
    assert len(answerable) >= 150
    unanswerable = [question for question in questions if question.doc is None]
    assert len(unanswerable) >= 30
    near = sum(question.near for question in unanswerable)
    assert near >= 15, "questions that share a subject with the corpus but are not answered"
    assert len(unanswerable) - near >= 15, "questions no document is about"
    assert len({question.id for question in questions}) == len(questions)
    assert {question.doc for question in answerable} == set(corpus)
    assert all(3 <= len(normalise(question.answer or "").split()) <= 15 for question in answerable)


def test_every_answer_span_is_on_one_page_of_its_document_only(
    corpus: dict[str, list[Page]], questions: list[Question]
) -> None:
    missing, elsewhere = [], []
    for question in questions:
        if question.doc is None:
            continue
        if not any(contains_answer(page.text, question) for page in corpus[question.doc]):
            missing.append(question.id)
        others = [
            name
            for name, document in corpus.items()
            if name != question.doc and any(contains_answer(p.text, question) for p in document)
        ]
        if others:
            elsewhere.append((question.id, others))
    assert not missing, f"answer spans not found in their document: {missing}"
    assert not elsewhere, f"answer spans that other documents contain too: {elsewhere}"


def test_every_answer_span_is_in_one_text_of_openwebuis_loader(
    built: dict[str, bytes], questions: list[Question]
) -> None:
    texts = {name: load(name, data) for name, data in built.items()}
    missing = [
        question.id
        for question in questions
        if question.doc is not None
        and not any(contains_answer(text, question) for text in texts[question.doc])
    ]
    assert not missing, f"answer spans the OpenWebUI baseline cannot hold: {missing}"


def test_the_openwebui_baseline_loads_pages_rows_and_cuts_at_headings(
    built: dict[str, bytes],
) -> None:
    pdf = next(
        name
        for name, data in built.items()
        if name.endswith(".pdf") and len(pages(name, data)) >= 4
    )
    assert len(load(pdf, built[pdf])) == len(pages(pdf, built[pdf]))
    csv = next(name for name in built if name.endswith(".csv"))
    rows = load(csv, built[csv])
    assert len(rows) == built[csv].decode().strip().count("\n")  # one per row, not the header
    assert all(": " in row for row in rows)
    markdown = load("guide.md", b"# Guide\n\nIntro.\n\n## Setup\n\nPlug it in.\n")
    assert Splitter().chunks(markdown) == ["# Guide  \nIntro.", "## Setup  \nPlug it in."]
    long = ["word " * 600]
    chunks = Splitter().chunks(long)
    assert len(chunks) == 4
    assert all(len(chunk) <= CHUNK_CHARS for chunk in chunks)


def test_some_answers_are_deep_inside_long_pdfs(
    corpus: dict[str, list[Page]], questions: list[Question]
) -> None:
    deep = [
        question.id
        for question in questions
        if question.doc is not None
        and len(corpus[question.doc]) >= 4
        and not contains_answer(corpus[question.doc][0].text, question)
    ]
    assert len(deep) >= 20


def test_questions_are_paraphrased(
    corpus: dict[str, list[Page]], questions: list[Question]
) -> None:
    """No question repeats a run of six words of its document."""

    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    copied = []
    for question in questions:
        if question.doc is None:
            continue
        document = " " + " ".join(words(" ".join(p.text for p in corpus[question.doc]))) + " "
        asked = words(question.text)
        runs = (" " + " ".join(asked[i : i + 6]) + " " for i in range(len(asked) - 5))
        if any(run in document for run in runs):
            copied.append(question.id)
    assert not copied
