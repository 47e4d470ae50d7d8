"""`python -m app ingest PATH...` (files and directory trees into the shared library, or a
user's documents, with a progress bar and a summary table) and `python -m app reindex` (every
stored chunk and memory embedded again with EMBEDDING_MODEL, after changing it).

Both work on the store directly: an embedded Chroma is one process's at a time, so they refuse
to run beside a gateway on the same DATA_DIR (upload through the API then), and a Chroma server
(CHROMA_HOST) is shared as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.config import load_settings
from app.errors import GatewayError
from app.knowledge.directory import Job, ingest_file, plan
from app.knowledge.documents import SHARED
from app.knowledge.reindex import reindex
from app.knowledge.service import open_knowledge
from app.providers.router import Router

console = Console(stderr=True)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingest = commands.add_parser(
        "ingest", help="add files and directory trees to the knowledge store"
    )
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument(
        "--user", help="the user whose documents they become (default: the shared library)"
    )
    ingest.set_defaults(handler=lambda args: asyncio.run(_ingest(args.paths, args.user or SHARED)))
    reindex = commands.add_parser(
        "reindex", help="embed every stored chunk and memory again with EMBEDDING_MODEL"
    )
    reindex.set_defaults(handler=lambda _: asyncio.run(_reindex()))


async def _ingest(paths: list[Path], owner: str) -> int:
    settings = load_settings()
    router = Router([], settings.providers)
    started = time.perf_counter()
    async with open_knowledge(settings.knowledge, settings.server.data_dir, router) as knowledge:
        if not knowledge.available:
            console.print(f"[red]cannot ingest:[/] {knowledge.reason}")
            return 1
        documents = knowledge.documents
        jobs: list[tuple[Job, Path, list[Path]]] = []
        for path in paths:
            root = path.expanduser().resolve()
            job = Job(id="cli", owner=owner, root=str(root))
            if root.is_dir():
                found = plan(root, settings.knowledge.max_document_bytes)
                job.skipped = found.skipped
                jobs.append((job, root, found.files))
            elif root.is_file():
                jobs.append((job, root.parent, [root]))
            else:
                job.errors.append((str(path), "no such file or directory"))
                jobs.append((job, root, []))
        total = sum(len(files) for _, _, files in jobs)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("ingesting", total=total)
            for job, root, files in jobs:
                for file in files:
                    progress.update(task, description=f"ingesting {file.name[:40]}")
                    await ingest_file(documents, job, root, file)
                    progress.advance(task)
    _summary([job for job, _, _ in jobs], time.perf_counter() - started)
    return 1 if any(job.errors for job, _, _ in jobs) else 0


def _summary(jobs: list[Job], seconds: float) -> None:
    table = Table(title="ingested")
    for column in ("files", "new", "replaced", "unchanged", "chunks", "skipped", "errors"):
        table.add_column(column, justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(
        str(sum(job.done for job in jobs)),
        str(sum(job.created for job in jobs)),
        str(sum(job.replaced for job in jobs)),
        str(sum(job.unchanged for job in jobs)),
        str(sum(job.chunks for job in jobs)),
        str(sum(len(job.skipped) for job in jobs)),
        str(sum(len(job.errors) for job in jobs)),
        f"{seconds:.1f}",
    )
    console.print(table)
    reasons = Counter(reason for job in jobs for _, reason in job.skipped)
    if reasons:
        skipped = Table(title="skipped")
        skipped.add_column("reason")
        skipped.add_column("files", justify="right")
        for reason, count in reasons.most_common():
            skipped.add_row(reason, str(count))
        console.print(skipped)
    for job in jobs:
        for path, error in job.errors:
            console.print(f"[red]error[/] {path}: {error}")


async def _reindex() -> int:
    settings = load_settings()
    try:
        chunks, memories, model = await reindex(
            settings.knowledge,
            settings.server.data_dir,
            lambda done: console.print(f"re-embedded {done} chunks", end="\r"),
        )
    except GatewayError as exc:
        console.print(f"[red]reindex failed:[/] {exc.message}")
        return 1
    console.print(f"re-embedded {chunks} chunks and {memories} memories with {model}")
    return 0
