"""Indexing a directory tree or a code base: the files worth reading (`.gitignore` rules
respected through `pathspec`, hidden directories, binaries, unsupported types and files over
MAX_DOCUMENT_BYTES skipped, each with its reason), ingested one by one as a background job whose
progress can be polled. Only directories under INDEX_ALLOWED_ROOTS may be indexed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from app.errors import Forbidden, GatewayError, InvalidRequest, NotFound
from app.knowledge.documents import Documents
from app.knowledge.parse import SUPPORTED, looks_binary

log = logging.getLogger(__name__)

_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv"})


@dataclass(frozen=True, slots=True)
class Plan:
    files: list[Path]
    skipped: list[tuple[str, str]]
    """(path relative to the root, reason)."""


def allowed(path: str, roots: list[Path]) -> Path:
    """`path` resolved, when it is a directory under one of `roots`."""
    if not roots:
        raise Forbidden(
            "indexing directories is off: set INDEX_ALLOWED_ROOTS to the directories it may read",
            param="directory_path",
        )
    resolved = Path(path).expanduser().resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise Forbidden(
            f"{path} is not under INDEX_ALLOWED_ROOTS ({', '.join(map(str, roots))})",
            param="directory_path",
        )
    if not resolved.is_dir():
        raise InvalidRequest(f"{path} is not a directory", param="directory_path")
    return resolved


def plan(root: Path, max_bytes: int) -> Plan:
    """What to ingest under `root`, and what not with why."""
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for path, reason in _walk(root):
        relative = str(path.relative_to(root))
        if reason:
            skipped.append((relative, reason))
            continue
        try:
            size = path.stat().st_size
            if size > max_bytes:
                skipped.append((relative, f"{size} bytes, over MAX_DOCUMENT_BYTES ({max_bytes})"))
                continue
            if size == 0:
                skipped.append((relative, "empty"))
                continue
            with path.open("rb") as handle:
                head = handle.read(8192)
        except OSError as exc:
            skipped.append((relative, f"unreadable: {exc.strerror or exc}"))
            continue
        if path.suffix.lower() not in SUPPORTED:
            reason = "binary" if looks_binary(head) else f"unsupported type '{path.suffix}'"
            skipped.append((relative, reason))
        elif looks_binary(head) and path.suffix.lower() not in (".pdf", ".docx"):
            skipped.append((relative, "binary"))
        else:
            files.append(path)
    return Plan(files, skipped)


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file under `root` with the reason it is left out ('' when it is not)."""
    specs: list[tuple[Path, pathspec.GitIgnoreSpec]] = []
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        ignore = here / ".gitignore"
        if ignore.is_file():
            lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
            specs.append((here, pathspec.GitIgnoreSpec.from_lines(lines)))
        for name in sorted(dirnames):
            path = here / name
            if name in _SKIPPED_DIRS or name.startswith("."):
                dirnames.remove(name)
                yield path, "hidden or tool directory"
            elif _ignored(path, specs, directory=True):
                dirnames.remove(name)
                yield path, "ignored by .gitignore"
        dirnames.sort()
        for name in sorted(filenames):
            path = here / name
            if name.startswith("."):
                yield path, "hidden file"
            elif path.is_symlink():
                yield path, "symbolic link"
            elif _ignored(path, specs, directory=False):
                yield path, "ignored by .gitignore"
            else:
                yield path, ""


def _ignored(
    path: Path, specs: list[tuple[Path, pathspec.GitIgnoreSpec]], *, directory: bool
) -> bool:
    for base, spec in specs:
        if path.is_relative_to(base):
            relative = str(path.relative_to(base)) + ("/" if directory else "")
            if spec.match_file(relative):
                return True
    return False


@dataclass(slots=True)
class Job:
    id: str
    owner: str
    root: str
    status: str = "queued"
    """queued, running, done or failed."""
    files: int = 0
    done: int = 0
    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    chunks: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "index_job",
            "status": self.status,
            "directory_path": self.root,
            "files": self.files,
            "processed": self.done,
            "progress": round(self.done / self.files, 4) if self.files else 1.0,
            "created": self.created,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "errors": [{"path": p, "error": e} for p, e in self.errors],
            "started_at": int(self.started),
            "finished_at": None if self.finished is None else int(self.finished),
            "seconds": round((self.finished or time.time()) - self.started, 2),
        }


class Jobs:
    """The directory index jobs of this process, kept for polling."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, documents: Documents, owner: str, root: Path, max_bytes: int) -> Job:
        job = Job("idx-" + uuid.uuid4().hex[:16], owner, str(root))
        self._jobs[job.id] = job
        task = asyncio.create_task(self._run(job, documents, root, max_bytes))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, owner: str, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound(f"no index job '{job_id}'", param="job_id")
        return job

    async def _run(self, job: Job, documents: Documents, root: Path, max_bytes: int) -> None:
        job.status = "running"
        try:
            found = await asyncio.to_thread(plan, root, max_bytes)
            job.files, job.skipped = len(found.files), found.skipped
            for path in found.files:
                await ingest_file(documents, job, root, path)
            job.status = "done"
        except Exception as exc:  # the job reports what stopped it
            log.exception("index job %s failed", job.id)
            job.status = "failed"
            job.errors.append(("", f"{type(exc).__name__}: {exc}"))
        finally:
            job.finished = time.time()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def ingest_file(documents: Documents, job: Job, root: Path, path: Path) -> None:
    """One file of `job` ingested under its path relative to `root`'s parent, so the name says
    which tree it came from; a failure is the file's, not the job's."""
    name = str(path.relative_to(root.parent))
    try:
        data = await asyncio.to_thread(path.read_bytes)
        result = await documents.ingest(job.owner, name, data)
    except (GatewayError, OSError) as exc:
        message = exc.message if isinstance(exc, GatewayError) else str(exc)
        job.errors.append((name, message))
    else:
        setattr(job, result.status, getattr(job, result.status) + 1)
        if result.status != "unchanged":
            job.chunks += result.document.chunks
    finally:
        job.done += 1
