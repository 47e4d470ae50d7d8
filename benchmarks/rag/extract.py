"""The text of a built corpus file, page by page, as a loader that reads the whole text sees it
(OpenWebUI's loaders do): the gateway's parser's sections in order, each heading written once
where it starts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby

from app.knowledge.parse import Section, parse


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a PDF (numbered from 1), or a whole document of another kind (None)."""

    number: int | None
    text: str


def pages(filename: str, data: bytes) -> list[Page]:
    """One Page per PDF page, or one Page for a document of any other kind."""
    sections = parse(filename, data).sections
    return [
        Page(number, _text(group))
        for number, group in groupby(sections, key=lambda section: section.page)
    ]


def _text(sections: Iterable[Section]) -> str:
    parts: list[str] = []
    above: tuple[str, ...] = ()
    for section in sections:
        path = section.heading_path
        shared = 0
        while shared < min(len(above), len(path)) and above[shared] == path[shared]:
            shared += 1
        parts += [*path[shared:], section.text]
        above = path
    return "\n\n".join(parts)
