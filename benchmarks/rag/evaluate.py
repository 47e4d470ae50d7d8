"""Score retrieval on the benchmark with ranx: `python -m benchmarks.rag.evaluate [--set fresh]`.

Configurations: `vector`, `bm25`, `hybrid` and `hybrid+threshold` are the gateway's knowledge
service (app/knowledge, through benchmarks/rag/gateway.py) searched in each mode, top 10;
`owui` is OpenWebUI's default retrieval, rebuilt in benchmarks/rag/owui.py (top 3). Each system
ingests the corpus of benchmarks/rag/build.py once. For every answerable question, the relevant
passages are those of its document, in that system's own chunking, that contain the answer
span; a question none of whose passages contains the span (it was split across chunks) keeps an
unreachable relevant id, so that it counts as a miss, and is reported. Prints markdown tables
and writes benchmarks/results/rag.json (rag-fresh.json for the fresh set).

The threshold sweep replays `hybrid`'s ungated top 10 under a plain cosine-similarity gate (a
passage stays when its similarity reaches t; the gateway's own gate is the question's: its best
passage must reach RAG_THRESHOLD, then the others stay down to 0.15 below it), to show where a
threshold separates answerable questions from the unanswerable ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import warnings
from collections import defaultdict
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.rag.build import documents
from benchmarks.rag.dataset import SETS, Question, contains_answer, load_questions
from benchmarks.rag.index import Index, Passage

RESULTS = Path(__file__).resolve().parent.parent / "results"
SYSTEM_OF = {
    "vector": "gateway",
    "bm25": "gateway",
    "hybrid": "gateway",
    "hybrid+threshold": "gateway",
    "owui": "owui",
}
METRICS = ["recall@5", "hit_rate@5", "mrr", "ndcg@10"]
SWEEP = [round(0.20 + 0.05 * step, 2) for step in range(10)]
KINDS = {"pdf": "PDF", "docx": "DOCX", "md": "Markdown", "html": "HTML", "txt": "text"}
KINDS |= {"json": "JSON/CSV", "csv": "JSON/CSV", "py": "code", "js": "code"}

Qrels = dict[str, dict[str, int]]
RunDict = dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class Timings:
    """What ingesting the corpus made and took, and each query's milliseconds."""

    chunks: int
    ingest_seconds: float
    query_ms: list[float]


@dataclass
class ConfigResult:
    """One configuration's figures."""

    config: str
    chunks: int
    ingest_seconds: float
    unreachable: list[str]
    metrics: dict[str, float]
    answered: float  # share of answerable questions that got at least one passage
    silent: dict[str, float]
    """Share of unanswerable questions that got no passage at all: `all`, `near`, `other`."""
    query_ms: list[float] = field(repr=False)
    hit5_by_kind: dict[str, float]
    right_document_at_1: float
    ranked: dict[str, list[tuple[float | None, bool]]] = field(repr=False)
    """Per question id, each retrieved passage's (similarity, contains the answer), best first."""


def open_index(system: str) -> AbstractAsyncContextManager[Index]:
    """The system under test, imported only when asked for."""
    if system == "owui":
        from benchmarks.rag import owui

        return owui.open_index()
    from benchmarks.rag import gateway

    return gateway.open_index()


def qrels_for(questions: list[Question], passages: list[Passage]) -> tuple[Qrels, list[str]]:
    """Relevant passages per answerable question, and the questions no passage can answer."""
    by_file: dict[str, list[Passage]] = defaultdict(list)
    for passage in passages:
        by_file[passage.filename].append(passage)
    qrels: Qrels = {}
    unreachable = []
    for question in questions:
        relevant = {
            passage.id: 1
            for passage in by_file[question.doc or ""]
            if contains_answer(passage.text, question)
        }
        if not relevant:
            unreachable.append(question.id)
            relevant = {f"{question.id}#unreachable": 1}
        qrels[question.id] = relevant
    return qrels, unreachable


def run_for(retrieved: dict[str, list[Passage]]) -> RunDict:
    """A ranx run: strictly decreasing scores keep each system's own order."""
    return {
        question_id: {passage.id: float(len(ranked) - rank) for rank, passage in enumerate(ranked)}
        for question_id, ranked in retrieved.items()
        if ranked
    }


def score(qrels: Qrels, run: RunDict) -> dict[str, float]:
    """recall@5, hit_rate@5, MRR and nDCG@10 over the questions of `qrels`, with ranx."""
    from ranx import Qrels as RanxQrels  # type: ignore[import-untyped]
    from ranx import Run, evaluate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's unsafe-cast notices about ranx's own arrays
        scores = evaluate(RanxQrels(qrels), Run(run), METRICS, make_comparable=True)
    return {metric: float(value) for metric, value in scores.items()}


def kind(filename: str) -> str:
    return KINDS[filename.rsplit(".", 1)[-1]]


async def evaluate_system(
    system: str, configs: list[str], questions: list[Question]
) -> list[ConfigResult]:
    """Ingest the corpus into one system, then run every question in each of its configs."""
    answerable = [question for question in questions if question.doc is not None]
    results = []
    async with open_index(system) as index:
        started = time.perf_counter()
        for filename, data in documents():
            await index.ingest(filename, data)
        ingest_seconds = time.perf_counter() - started
        passages = await index.passages()
        qrels, unreachable = qrels_for(answerable, passages)
        for config in configs:
            await index.search(config, "warm-up query")
            retrieved: dict[str, list[Passage]] = {}
            query_ms = []
            for question in questions:
                started = time.perf_counter()
                retrieved[question.id] = await index.search(config, question.text)
                query_ms.append((time.perf_counter() - started) * 1000)
            timings = Timings(len(passages), ingest_seconds, query_ms)
            results.append(summarise(config, retrieved, questions, qrels, unreachable, timings))
    return results


def summarise(
    config: str,
    retrieved: dict[str, list[Passage]],
    questions: list[Question],
    qrels: Qrels,
    unreachable: list[str],
    timings: Timings,
) -> ConfigResult:
    """One configuration's figures from what it retrieved for every question."""
    answerable = [question for question in questions if question.doc is not None]
    hits: dict[str, list[bool]] = defaultdict(list)
    for question in answerable:
        top = retrieved[question.id][:5]
        hits[kind(question.doc or "")].append(any(contains_answer(p.text, question) for p in top))
    right_document = sum(
        bool(retrieved[q.id]) and retrieved[q.id][0].filename == q.doc for q in answerable
    )
    return ConfigResult(
        config=config,
        chunks=timings.chunks,
        ingest_seconds=timings.ingest_seconds,
        unreachable=unreachable,
        metrics=score(qrels, run_for({q.id: retrieved[q.id] for q in answerable})),
        answered=sum(bool(retrieved[q.id]) for q in answerable) / len(answerable),
        silent=silent_shares(questions, {q for q, found in retrieved.items() if not found}),
        query_ms=timings.query_ms,
        hit5_by_kind={name: sum(found) / len(found) for name, found in sorted(hits.items())},
        right_document_at_1=right_document / len(answerable),
        ranked={
            q.id: [(p.similarity, contains_answer(p.text, q)) for p in retrieved[q.id]]
            for q in questions
        },
    )


def silent_shares(questions: list[Question], silent: set[str]) -> dict[str, float]:
    """The share of the unanswerable questions, all of them, the `near` ones and the others,
    whose id is in `silent` (they got no passage)."""
    groups = {
        "all": [q.id for q in questions if q.doc is None],
        "near": [q.id for q in questions if q.doc is None and q.near],
        "other": [q.id for q in questions if q.doc is None and not q.near],
    }
    return {name: len(silent.intersection(ids)) / len(ids) for name, ids in groups.items()}


def sweep(result: ConfigResult, questions: list[Question]) -> list[str]:
    """Markdown rows: per threshold, the share of answerable questions that keep a passage, that
    keep an answer passage in the top 5, and of unanswerable questions left with none."""
    answerable = [q.id for q in questions if q.doc is not None]
    rows = []
    for threshold in SWEEP:
        kept = {
            question_id: [
                relevant
                for similarity, relevant in ranked
                if similarity is not None and similarity >= threshold
            ]
            for question_id, ranked in result.ranked.items()
        }
        any_kept = sum(bool(kept[q]) for q in answerable) / len(answerable)
        answer_kept = sum(any(kept[q][:5]) for q in answerable) / len(answerable)
        silent = silent_shares(questions, {q for q, passages in kept.items() if not passages})
        rows.append(
            f"| {threshold:.2f} | {any_kept:.0%} | {answer_kept:.0%} | {silent['all']:.0%} "
            f"| {silent['near']:.0%} | {silent['other']:.0%} |"
        )
    return rows


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def markdown(results: list[ConfigResult], questions: list[Question]) -> str:
    """The tables for docs/PERFORMANCE.md."""
    answerable = sum(question.doc is not None for question in questions)
    lines = [
        f"{len(dict(documents()))} documents, {answerable} answerable questions, "
        f"{len(questions) - answerable} unanswerable "
        f"({sum(question.near for question in questions)} of them near the corpus's subjects).",
        "",
        "| config | recall@5 | hit@5 | MRR | nDCG@10 | right doc @1 | unreachable | "
        "answerable with passages | unanswerable with none: all / near / other | chunks | "
        "ingest s | query ms p50 | query ms p95 |",
        "|---|" + "---:|" * 12,
    ]
    for result in results:
        m = result.metrics
        lines.append(
            f"| {result.config} | {m['recall@5']:.3f} | {m['hit_rate@5']:.3f} | {m['mrr']:.3f} "
            f"| {m['ndcg@10']:.3f} | {result.right_document_at_1:.3f} | {len(result.unreachable)} "
            f"| {result.answered:.0%} | {result.silent['all']:.0%} / "
            f"{result.silent['near']:.0%} / {result.silent['other']:.0%} | {result.chunks} "
            f"| {result.ingest_seconds:.1f} | {statistics.median(result.query_ms):.1f} "
            f"| {percentile(result.query_ms, 0.95):.1f} |"
        )
    kinds = sorted({name for result in results for name in result.hit5_by_kind})
    lines += ["", "hit@5 by document kind:", "", "| config | " + " | ".join(kinds) + " |"]
    lines.append("|---|" + "---:|" * len(kinds))
    for result in results:
        cells = " | ".join(f"{result.hit5_by_kind.get(name, 0):.3f}" for name in kinds)
        lines.append(f"| {result.config} | {cells} |")
    for result in results:
        if result.config == "hybrid" and all(
            similarity is not None for ranked in result.ranked.values() for similarity, _ in ranked
        ):
            lines += [
                "",
                "Threshold sweep (hybrid's top 10 under a cosine-similarity gate):",
                "",
                "| threshold | answerable with passages | answer in top 5 | "
                "unanswerable with none | near | other |",
                "|---:|---:|---:|---:|---:|---:|",
                *sweep(result, questions),
            ]
    return "\n".join(lines)


async def run(configs: list[str], questions: list[Question]) -> list[ConfigResult]:
    """Every configuration's results, in the order asked."""
    systems: dict[str, list[str]] = defaultdict(list)
    for config in configs:
        systems[SYSTEM_OF[config]].append(config)
    results = []
    for system, names in systems.items():
        results += await evaluate_system(system, names, questions)
    return sorted(results, key=lambda result: configs.index(result.config))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--configs", default=",".join(SYSTEM_OF), help="comma-separated")
    parser.add_argument("--set", choices=sorted(SETS), default="first", help="the question set")
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/rag[-SET].json")
    args = parser.parse_args(argv)
    output = args.output or RESULTS / (
        "rag.json" if args.set == "first" else f"rag-{args.set}.json"
    )
    configs = args.configs.split(",")
    unknown = set(configs) - set(SYSTEM_OF)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {list(SYSTEM_OF)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    questions = load_questions(SETS[args.set])
    results = asyncio.run(run(configs, questions))
    print(markdown(results, questions))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps([asdict(result) for result in results], indent=2))
    print(f"\nwritten to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
