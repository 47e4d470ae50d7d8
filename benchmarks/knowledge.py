"""Knowledge's own costs on this machine, in process (no HTTP):

- ingestion: documents through `Documents.ingest` (parse, chunk, embed, store), chunks per second;
- query latency of a hybrid search (`Documents.search`, query embedding included) at 10k and
  100k chunks, p50 and p99 over the queries;
- the process's resident memory once the embedder is loaded, and after the 100k store.

The 10k/100k stores are filled directly (catalogue rows and Chroma vectors) with synthetic
passages and random unit vectors: embedding 100k real chunks would take this 2-core machine
most of an hour, and a search costs the same whatever the stored vectors mean. The queries are
real sentences, embedded by the real model on every call.

    python benchmarks/knowledge.py [--sizes 10000,100000] [--queries 200] [--corpus DIR]

`--corpus` ingests the files of a directory for the ingestion figure (default: the retrieval
benchmark's corpus, built into a temporary directory). Writes results/knowledge.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import load_settings  # noqa: E402
from app.knowledge.catalogue import ChunkRow, DocumentRow  # noqa: E402
from app.knowledge.documents import Documents  # noqa: E402
from app.knowledge.service import open_knowledge  # noqa: E402
from app.providers.router import Router  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUERIES = [
    "How long is the warranty on the boiler?",
    "what is the refund policy for damaged items",
    "Which port does the API server listen on by default?",
    "how many vacation days do new employees get",
    "best time of year to visit the northern coast",
    "How do I rotate the signing keys?",
    "what temperature should the oven be for the bread",
    "Who approves travel expenses over the limit?",
]
WORDS = (
    "boiler pressure warranty radiator invoice refund policy server port key rotation oven "
    "bread flour travel expense approval coast harbour museum vacation employee contract "
    "database index replica cluster latency cache token budget passage citation engine "
    "garden soil compost tomato irrigation battery charger cable voltage firmware update"
).split()
RSS_MB = 1024 * 1024


def rss() -> float:
    return round(psutil.Process().memory_info().rss / RSS_MB, 1)


def passage(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 140))) + "."


async def fill(documents: Documents, size: int, dimension: int) -> float:
    """`size` synthetic chunks in 1,000-chunk documents; seconds taken."""
    rng = random.Random(size)
    started = time.perf_counter()
    for start in range(0, size, 1000):
        count = min(1000, size - start)
        doc_id = f"doc-{start:012x}"
        rows = [
            ChunkRow(f"{doc_id}-1-{i}", doc_id, "bench", i, passage(rng), "Bench", None, None, ())
            for i in range(count)
        ]
        vectors = np.random.default_rng(start).normal(size=(count, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        now = time.time()
        row = DocumentRow(doc_id, "bench", f"{doc_id}.txt", "Bench", "text", doc_id, 0, 1, count, now, now)
        meta = {"owner": "bench", "document_id": doc_id, "version": 1}
        await documents.vectors.add([c.id for c in rows], vectors, [meta] * count)
        await asyncio.to_thread(documents.catalogue.put, row, rows)
    return time.perf_counter() - started


async def latencies(documents: Documents, queries: int) -> dict[str, float]:
    for query in QUERIES:  # warm the caches and the model
        await documents.search("bench", query, 5)
    times = []
    for i in range(queries):
        started = time.perf_counter()
        await documents.search("bench", QUERIES[i % len(QUERIES)], 5)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 2),
        "mean_ms": round(statistics.fmean(times), 2),
    }


async def ingestion(documents: Documents, corpus: Path) -> dict[str, float]:
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    started = time.perf_counter()
    chunks = 0
    for path in files:
        result = await documents.ingest("ingest", str(path.relative_to(corpus)), path.read_bytes())
        chunks += result.document.chunks
    seconds = time.perf_counter() - started
    return {
        "files": len(files),
        "chunks": chunks,
        "seconds": round(seconds, 1),
        "chunks_per_s": round(chunks / seconds, 1),
    }


def built_corpus(directory: Path) -> Path:
    from benchmarks.rag.build import build

    build(directory)
    return directory


async def main(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {"rss_start_mb": rss()}
    with tempfile.TemporaryDirectory(prefix="knowledge-bench-") as tmp:
        root = Path(tmp)
        settings = load_settings(_env_file=None, data_dir=root / "data")
        router = Router([], settings.providers)
        async with open_knowledge(settings.knowledge, root / "data", router) as knowledge:
            assert knowledge.embedder is not None, knowledge.reason
            results["rss_embedder_mb"] = rss()
            documents = knowledge.documents
            corpus = args.corpus or built_corpus(root / "corpus")
            results["ingestion"] = await ingestion(documents, corpus)
            print("ingestion:", results["ingestion"], flush=True)
            filled = 0
            for size in args.sizes:
                seconds = await fill(documents, size - filled, knowledge.embedder.dimension)
                filled = size
                figures = await latencies(documents, args.queries)
                figures["fill_s"] = round(seconds, 1)
                results[f"query_{size}"] = figures
                print(f"{size} chunks:", figures, flush=True)
            results["rss_end_mb"] = rss()
    results["cpus"] = os.cpu_count()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000]
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--corpus", type=Path)
    found = asyncio.run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "knowledge.json").write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps(found, indent=2))
