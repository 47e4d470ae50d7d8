"""The catalogue: documents and their chunks in SQLite, and the FTS5 keyword index over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.knowledge.catalogue import Catalogue, ChunkRow, DocumentRow, query_terms


def _document(owner: str, doc_id: str, version: int = 1, chunks: int = 2) -> DocumentRow:
    return DocumentRow(
        doc_id, owner, f"{doc_id}.md", "Title", "markdown", "abc", 10, version, chunks, 1.0, 2.0
    )


def _chunk(doc_id: str, owner: str, index: int, text: str, version: int = 1) -> ChunkRow:
    return ChunkRow(
        f"{doc_id}-{version}-{index}",
        doc_id,
        owner,
        index,
        text,
        "Title › Section",
        None,
        (index * 10 + 1, index * 10 + 9),
        ("Section",),
    )


@pytest.fixture
def catalogue(tmp_path: Path) -> Iterator[Catalogue]:
    found = Catalogue(tmp_path / "k.sqlite3")
    yield found
    found.close()


def test_keyword_search_ranks_by_bm25_within_the_owners_scope(catalogue: Catalogue) -> None:
    catalogue.put(
        _document("alice", "doc-a"),
        [
            _chunk("doc-a", "alice", 0, "The boiler pressure must stay below 2 bar."),
            _chunk("doc-a", "alice", 1, "Bleed the radiators every autumn."),
        ],
    )
    catalogue.put(
        _document("bob", "doc-b", chunks=1),
        [_chunk("doc-b", "bob", 0, "Boiler pressure boiler pressure boiler.")],
    )
    hits = catalogue.keyword(["alice"], "what pressure should the boiler have?", 10)
    assert [id_ for id_, _ in hits] == ["doc-a-1-0"]
    assert hits[0][1] > 0
    both = catalogue.keyword(["alice", "bob"], "boiler pressure", 10)
    assert [id_ for id_, _ in both] == ["doc-b-1-0", "doc-a-1-0"]  # more matches rank higher


def test_stemming_and_stop_words(catalogue: Catalogue) -> None:
    catalogue.put(
        _document("u", "doc-s", chunks=1), [_chunk("doc-s", "u", 0, "Bleeding radiators")]
    )
    assert catalogue.keyword(["u"], "how do I bleed a radiator", 5)
    assert catalogue.keyword(["u"], "the and of", 5) == []
    assert query_terms("The Boiler, the boiler!") == ["boiler"]


def test_a_new_version_replaces_the_chunks_in_one_transaction(catalogue: Catalogue) -> None:
    catalogue.put(_document("u", "doc-v"), [_chunk("doc-v", "u", 0, "old text about tea")])
    catalogue.put(
        _document("u", "doc-v", version=2, chunks=1),
        [_chunk("doc-v", "u", 0, "new text about coffee", version=2)],
    )
    assert catalogue.keyword(["u"], "tea", 5) == []
    assert [id_ for id_, _ in catalogue.keyword(["u"], "coffee", 5)] == ["doc-v-2-0"]
    current = catalogue.chunks(["doc-v-1-0", "doc-v-2-0"])
    assert list(current) == ["doc-v-2-0"]
    assert current["doc-v-2-0"].lines == (1, 9)
    assert current["doc-v-2-0"].headings == ("Section",)


def test_a_failed_put_leaves_the_old_version(catalogue: Catalogue) -> None:
    catalogue.put(_document("u", "doc-f", chunks=1), [_chunk("doc-f", "u", 0, "kept words")])
    duplicate = _chunk("doc-f", "u", 0, "new words", version=2)
    with pytest.raises(Exception, match="UNIQUE"):
        catalogue.put(_document("u", "doc-f", version=2), [duplicate, duplicate])
    assert [id_ for id_, _ in catalogue.keyword(["u"], "kept", 5)] == ["doc-f-1-0"]
    assert catalogue.keyword(["u"], "new", 5) == []
    assert catalogue.named("u", "doc-f.md") == _document("u", "doc-f", chunks=1)


def test_remove_and_counts(catalogue: Catalogue) -> None:
    catalogue.put(
        _document("u", "doc-1"), [_chunk("doc-1", "u", 0, "one"), _chunk("doc-1", "u", 1, "two")]
    )
    catalogue.put(_document("w", "doc-2", chunks=1), [_chunk("doc-2", "w", 0, "three")])
    assert catalogue.counts(["u"]) == (1, 2)
    assert catalogue.total() == (2, 3)
    assert sorted(catalogue.owners()) == ["u", "w"]
    catalogue.remove(["doc-1"])
    assert catalogue.indexed("u") == 0
    assert catalogue.counts(["u"]) == (0, 0)
    assert catalogue.indexed("w") == 1
    assert [len(batch) for batch in catalogue.all_chunks(batch=1)] == [1]


def test_owner_names_of_any_shape_are_scoped(catalogue: Catalogue) -> None:
    owner = 'key:"quoted" OR *'
    catalogue.put(_document(owner, "doc-q", chunks=1), [_chunk("doc-q", owner, 0, "quince jam")])
    assert catalogue.keyword([owner], "quince", 5)
    assert catalogue.keyword(["other"], "quince", 5) == []
