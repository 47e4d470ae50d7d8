"""Chunks: passages of a parsed document that fit the embedder's window, cut along the
document's structure, each knowing where it sits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

from app.knowledge.document import ParsedDocument, Section

_Piece = tuple[str, tuple[int, int] | None]
"""A chunk's text and its source lines."""

_LEADING_BLANK_LINES = re.compile(r"(?:[ \t]*\n)+")


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    """The passage as shown to the model and the user."""
    context: str
    """Where it sits, `Title › Heading › Subheading`: put before the text when embedding."""
    index: int
    """Its place in the document, from 0."""
    heading_path: tuple[str, ...]
    page: int | None
    lines: tuple[int, int] | None
    """The first and last 1-based source line (text formats)."""

    @property
    def embed_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text


class Chunker:
    """Cuts documents into chunks whose `embed_text` is at most `max_tokens` tokens of
    `tokenizer`, special tokens not counted (without a tokenizer, four characters a token).

    A chunk never spans two pages or two heading sections. Within one, neighbouring paragraphs,
    list items, rows and code blocks are kept whole and put together until a chunk reaches
    `target` tokens; one too long for the window is split at the deepest boundary that fits
    (blank line, line, sentence, word), consecutive pieces sharing up to `overlap` tokens.

    The default target, 160 of MiniLM's 256, makes most chunks 160 to 200 tokens (about 120 to
    150 words), a block that fits whole up to the window: all-MiniLM-L6-v2 was trained on texts
    of at most 128 word pieces, so the vector of a much longer passage blurs what it is about,
    while a much shorter one is too little to answer from (a sentence, a table row) and its
    context would outweigh it.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | None,
        max_tokens: int = 256,
        overlap: int = 32,
        target: int = 160,
    ) -> None:
        if not 0 <= overlap < target <= max_tokens:
            raise ValueError("a Chunker needs 0 <= overlap < target <= max_tokens")
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.target = target
        self._tokenizer = None
        if tokenizer is not None:
            # A copy that counts every token: a tokenizer.json may truncate (MiniLM's does, at
            # 128) or pad.
            self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
            self._tokenizer.no_truncation()
            self._tokenizer.no_padding()

    def chunks(self, doc: ParsedDocument) -> list[Chunk]:
        chunks: list[Chunk] = []
        markdown = doc.kind == "markdown"
        for (heading_path, page), group in groupby(doc.sections, _place):
            context = self._context(doc.title, heading_path)
            for text, lines in self._fit(list(group), context, markdown=markdown):
                chunks.append(Chunk(text, context, len(chunks), heading_path, page, lines))
        return chunks

    def _count(self, text: str) -> int:
        if self._tokenizer is None:
            return -(-len(text) // 4)
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _counts(self, texts: list[str]) -> list[int]:
        if self._tokenizer is None:
            return [self._count(text) for text in texts]
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def _context(self, title: str, heading_path: tuple[str, ...]) -> str:
        """`Title › Heading › Subheading`, a heading that repeats the one above left out, and
        shortened to a quarter of the window at most."""
        names: list[str] = []
        for name in (title, *heading_path):
            if name and (not names or name.casefold() != names[-1].casefold()):
                names.append(name)
        context = " › ".join(names)
        limit = self.max_tokens // 4
        if len(names) > 2 and self._count(context) > limit:
            context = " › ".join((names[0], "…", names[-1]))
        while self._count(context) > limit:
            context = context[: len(context) * 3 // 4]
        return context

    def _fit(self, sections: list[Section], context: str, *, markdown: bool) -> list[_Piece]:
        """The chunks of one heading section or page, measured with their context. Tokens of
        the joined text are those of its parts for most tokenizers; when not, the room is
        narrowed by what the longest chunk had too many and the section is cut again."""
        room = self.max_tokens - (self._count(f"{context}\n") if context else 0)
        while True:
            pieces = self._cut(sections, room, markdown=markdown)
            embedded = [f"{context}\n{text}" if context else text for text, _ in pieces]
            excess = max(self._counts(embedded), default=0) - self.max_tokens
            if excess <= 0:
                return pieces
            room -= excess

    def _cut(self, sections: list[Section], room: int, *, markdown: bool) -> list[_Piece]:
        pieces: list[_Piece] = []
        run: list[Section] = []
        size = 0
        for section, tokens in zip(sections, self._counts([s.text for s in sections]), strict=True):
            if run and (tokens > room or size >= self.target or size + tokens > room):
                pieces.append(_joined(run))
                run, size = [], 0
            if tokens > room:
                pieces += self._split(section, room, markdown=markdown)
            else:
                run.append(section)
                size += tokens
        if run:
            pieces.append(_joined(run))
        return pieces

    def _split(self, section: Section, room: int, *, markdown: bool) -> list[_Piece]:
        """A section too long for the window in overlapping pieces of `target` to `room`
        tokens; code keeps its indentation."""
        low = min(self.target, room)
        splitter = MarkdownSplitter if markdown and not section.code else TextSplitter
        cutter = splitter.from_callback(
            self._count, (low, room), overlap=min(self.overlap, low - 1), trim=not section.code
        )
        pieces: list[_Piece] = []
        line, counted = section.first_line, 0
        for offset, piece in cutter.chunk_indices(section.text):
            blank = _LEADING_BLANK_LINES.match(piece)
            start = offset + (blank.end() if blank else 0)
            text = section.text[start : offset + len(piece)].rstrip()
            if not text.strip():
                continue
            lines = None
            if line is not None:
                line, counted = line + section.text.count("\n", counted, start), start
                lines = (line, line + text.count("\n"))
            pieces.append((text, lines))
        return pieces


def _place(section: Section) -> tuple[tuple[str, ...], int | None]:
    return section.heading_path, section.page


def _joined(run: list[Section]) -> _Piece:
    """Neighbouring sections as one chunk, a blank line between them."""
    text = "\n\n".join(section.text for section in run)
    first, last = run[0].first_line, run[-1].first_line
    if first is None or last is None:
        return text, None
    return text, (first, last + run[-1].text.count("\n"))
