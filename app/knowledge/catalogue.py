"""The documents and the text of their current chunks, with the keyword index over them: one
SQLite file (`DATA_DIR/knowledge.sqlite3`, WAL) beside the vectors in Chroma.

The keyword index is SQLite's FTS5 with its Okapi BM25 ranking: updated row by row as documents
come and go, on disk, never rebuilt. Each owner has an index table of its own (`fts_<hash of
the owner>`), so that a search costs what the owner's chunks cost, whoever else stores more.

A document's chunks are replaced in one transaction, so the keyword side never shows two
versions; the vector side is made consistent with it by `service.py`, which keeps only the
vector hits whose chunk ids this catalogue holds.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    version INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (owner, name)
);
CREATE INDEX IF NOT EXISTS documents_hash ON documents (owner, sha256);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    document_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    context TEXT NOT NULL,
    page INTEGER,
    line_start INTEGER,
    line_end INTEGER,
    headings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id);
CREATE INDEX IF NOT EXISTS chunks_owner ON chunks (owner);
"""
_INDEX = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5 (body, tokenize = 'porter unicode61')"
)

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
tell know please
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
MATCHES_SCORED = 8000
HEADING_SEPARATOR = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: str
    owner: str
    name: str
    title: str
    kind: str
    sha256: str
    bytes: int
    version: int
    chunks: int
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: str
    document_id: str
    owner: str
    index: int
    text: str
    context: str
    page: int | None
    lines: tuple[int, int] | None
    headings: tuple[str, ...]

    @property
    def embed_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text


def index_table(owner: str) -> str:
    """The name of `owner`'s keyword index table: letters, digits and _ whatever the name."""
    return "fts_" + hashlib.sha256(owner.encode()).hexdigest()[:32]


def query_terms(text: str) -> list[str]:
    """The words of `text` worth matching: lower case, no stop words, each once."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in _STOPWORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


class Catalogue:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _documents(self, sql: str, args: Iterable[object]) -> list[DocumentRow]:
        with self._lock:
            rows = self._db.execute(sql, tuple(args)).fetchall()
        return [DocumentRow(*row) for row in rows]

    def named(self, owner: str, name: str) -> DocumentRow | None:
        found = self._documents("SELECT * FROM documents WHERE owner=? AND name=?", (owner, name))
        return found[0] if found else None

    def with_hash(self, owner: str, sha256: str) -> DocumentRow | None:
        found = self._documents(
            "SELECT * FROM documents WHERE owner=? AND sha256=? LIMIT 1", (owner, sha256)
        )
        return found[0] if found else None

    def get(self, owners: list[str], document_id: str) -> DocumentRow | None:
        marks = ",".join("?" * len(owners))
        found = self._documents(
            f"SELECT * FROM documents WHERE id=? AND owner IN ({marks})", (document_id, *owners)
        )
        return found[0] if found else None

    def by_ids(self, ids: list[str]) -> dict[str, DocumentRow]:
        marks = ",".join("?" * len(ids))
        rows = self._documents(f"SELECT * FROM documents WHERE id IN ({marks})", ids)
        return {row.id: row for row in rows}

    def owners(self) -> list[str]:
        """Every owner that has documents."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT owner FROM documents").fetchall()
        return [str(row[0]) for row in rows]

    def documents(self, owners: list[str]) -> list[DocumentRow]:
        marks = ",".join("?" * len(owners))
        return self._documents(
            f"SELECT * FROM documents WHERE owner IN ({marks}) ORDER BY updated DESC", owners
        )

    def put(self, document: DocumentRow, chunks: list[ChunkRow]) -> None:
        """`document` with exactly `chunks`, in place of what it held: one transaction."""
        table = index_table(document.owner)
        with self._lock:
            db = self._db
            db.execute(_INDEX.format(table=table))
            db.execute("BEGIN IMMEDIATE")
            try:
                self._drop_chunks(document.id)
                for chunk in chunks:
                    cursor = db.execute(
                        "INSERT INTO chunks (id, document_id, owner, idx, text, context, page,"
                        " line_start, line_end, headings) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (
                            chunk.id,
                            chunk.document_id,
                            chunk.owner,
                            chunk.index,
                            chunk.text,
                            chunk.context,
                            chunk.page,
                            chunk.lines[0] if chunk.lines else None,
                            chunk.lines[1] if chunk.lines else None,
                            HEADING_SEPARATOR.join(chunk.headings),
                        ),
                    )
                    db.execute(
                        f"INSERT INTO {table} (rowid, body) VALUES (?,?)",
                        (cursor.lastrowid, chunk.embed_text),
                    )
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        document.id,
                        document.owner,
                        document.name,
                        document.title,
                        document.kind,
                        document.sha256,
                        document.bytes,
                        document.version,
                        document.chunks,
                        document.created,
                        document.updated,
                    ),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _drop_chunks(self, document_id: str) -> None:
        owner = self._db.execute(
            "SELECT owner FROM chunks WHERE document_id=? LIMIT 1", (document_id,)
        ).fetchone()
        if owner is None:
            return
        self._db.execute(
            f"DELETE FROM {index_table(owner[0])} WHERE rowid IN"
            " (SELECT rowid FROM chunks WHERE document_id=?)",
            (document_id,),
        )
        self._db.execute("DELETE FROM chunks WHERE document_id=?", (document_id,))

    def remove(self, document_ids: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for document_id in document_ids:
                    self._drop_chunks(document_id)
                    self._db.execute("DELETE FROM documents WHERE id=?", (document_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def chunks(self, ids: list[str]) -> dict[str, ChunkRow]:
        """The current chunks among `ids` (a chunk of a replaced version is not)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                "SELECT id, document_id, owner, idx, text, context, page, line_start, line_end,"
                f" headings FROM chunks WHERE id IN ({marks})",
                ids,
            ).fetchall()
        return {row[0]: _chunk(row) for row in rows}

    def chunks_of(self, document_id: str) -> list[ChunkRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, document_id, owner, idx, text, context, page, line_start, line_end,"
                " headings FROM chunks WHERE document_id=? ORDER BY idx",
                (document_id,),
            ).fetchall()
        return [_chunk(row) for row in rows]

    def keyword(self, owners: list[str], query: str, n: int) -> list[tuple[str, float]]:
        """The ids of the `n` chunks of `owners` that BM25 ranks best for `query`, with their
        scores (higher is better)."""
        terms = query_terms(query)
        if not terms or not owners:
            return []
        found: list[tuple[str, float]] = []
        with self._lock:
            for owner in owners:
                table = index_table(owner)
                if not self._has_table(table):
                    continue
                words = " OR ".join(f'"{term}"' for term in self._affordable(table, terms))
                if not words:
                    continue
                # ranked and cut first, then joined: a join before the LIMIT reads a chunk row for
                # every match (half the query's time at 100k chunks)
                found += self._db.execute(
                    f"SELECT c.id, -m.score FROM (SELECT rowid, bm25({table}) AS score"
                    f" FROM {table} WHERE {table} MATCH ? ORDER BY score LIMIT ?) AS m"
                    " JOIN chunks c ON c.rowid = m.rowid",
                    (words, n),
                ).fetchall()
        found.sort(key=lambda row: -row[1])
        rows = found[:n]
        return [(row[0], float(row[1])) for row in rows]

    def _has_table(self, table: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
        ).fetchone()
        return row is not None

    def _affordable(self, table: str, terms: list[str]) -> list[str]:
        """The rarest of `terms` whose chunks number at most MATCHES_SCORED together (at least
        the rarest one): BM25 is computed for every chunk a query matches, so a common word
        would make it cost tens of milliseconds at 100k chunks, and a word in that many chunks
        weighs little in the ranking anyway (its inverse document frequency is small)."""
        found = []
        for term in terms:
            (chunks,) = self._db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {table} MATCH ?", (f'"{term}"',)
            ).fetchone()
            if chunks:
                found.append((int(chunks), term))
        found.sort()
        chosen: list[str] = []
        total = 0
        for chunks, term in found:
            if chosen and total + chunks > MATCHES_SCORED:
                break
            chosen.append(term)
            total += chunks
        return chosen

    def counts(self, owners: list[str]) -> tuple[int, int]:
        """How many documents and chunks `owners` have."""
        marks = ",".join("?" * len(owners))
        with self._lock:
            documents, chunks = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents"
                f" WHERE owner IN ({marks})",
                owners,
            ).fetchone()
        return int(documents), int(chunks)

    def total(self) -> tuple[int, int]:
        """How many documents and chunks there are, all owners'."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents"
            ).fetchone()
        return int(row[0]), int(row[1])

    def all_chunks(self, batch: int = 256) -> Iterator[list[ChunkRow]]:
        """Every current chunk, in batches (for re-embedding them all)."""
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT rowid, id, document_id, owner, idx, text, context, page, line_start,"
                    " line_end, headings FROM chunks WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [_chunk(row[1:]) for row in rows]

    def indexed(self, owner: str) -> int:
        """How many rows `owner`'s keyword index holds (to verify a forget)."""
        table = index_table(owner)
        with self._lock:
            if not self._has_table(table):
                return 0
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _chunk(row: tuple[object, ...]) -> ChunkRow:
    (id_, document_id, owner, idx, text, context, page, start, end, headings) = row
    return ChunkRow(
        id=str(id_),
        document_id=str(document_id),
        owner=str(owner),
        index=int(idx),  # type: ignore[call-overload]
        text=str(text),
        context=str(context),
        page=None if page is None else int(page),  # type: ignore[call-overload]
        lines=None if start is None else (int(start), int(end)),  # type: ignore[call-overload]
        headings=tuple(str(headings).split(HEADING_SEPARATOR)) if headings else (),
    )
