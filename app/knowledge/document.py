"""What parsing a document gives: its sections of text in document order, each with where it
sits (the headings above it, its PDF page or its first source line)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class Section:
    text: str
    heading_path: tuple[str, ...] = ()
    """The headings this text sits under, outermost first."""
    page: int | None = None
    """1-based, PDFs only."""
    first_line: int | None = None
    """1-based line of the source where `text` starts (text formats)."""
    code: bool = False


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    title: str
    kind: str
    """pdf, markdown, text, html, docx, json, csv or code."""
    sections: list[Section]
    """In document order, none of them blank."""


class DocumentError(InvalidRequest):
    """A file that cannot be read; the message starts with the file's name."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="file")


class Headings:
    """The headings above the current point of a document, by level (1 outermost)."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def enter(self, level: int, text: str) -> None:
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, text))

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._open)


def table_row(cells: Iterable[str]) -> str:
    """A table's row as `cell | cell`, spaces tidied, empty cells at the end left out."""
    shown = [" ".join(cell.split()) for cell in cells]
    while shown and not shown[-1]:
        shown.pop()
    return " | ".join(shown)


def lines_section(
    lines: list[str], start: int, heading_path: tuple[str, ...] = (), *, code: bool = False
) -> Section | None:
    """The source `lines` that start at 0-based line `start` as a section, without the blank
    lines at either end; None when all are blank."""
    first, last = 0, len(lines)
    while first < last and not lines[first].strip():
        first += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    if first == last:
        return None
    text = "\n".join(lines[first:last])
    return Section(text, heading_path, first_line=start + first + 1, code=code)
