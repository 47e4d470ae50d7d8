"""The text of a built corpus file, page by page, as the retrieval configurations see it.

Until the gateway's parser (app.knowledge.parse) is on main, this reads PDFs with pypdf, DOCX
with python-docx, HTML with lxml and everything else as UTF-8 text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from html.parser import HTMLParser

import docx
import pypdf


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a PDF (numbered from 1), or a whole document of another kind (None)."""

    number: int | None
    text: str


def pages(filename: str, data: bytes) -> list[Page]:
    """The document's text, one Page per PDF page or one Page for any other kind."""
    suffix = filename.rsplit(".", 1)[-1].lower()
    if suffix == "pdf":
        reader = pypdf.PdfReader(io.BytesIO(data))
        return [Page(number, page.extract_text()) for number, page in enumerate(reader.pages, 1)]
    if suffix == "docx":
        document = docx.Document(io.BytesIO(data))
        return [Page(None, "\n".join(paragraph.text for paragraph in document.paragraphs))]
    if suffix in ("html", "htm"):
        parser = _HtmlText()
        parser.feed(data.decode("utf-8"))
        parser.close()
        return [Page(None, "".join(parser.parts))]
    return [Page(None, data.decode("utf-8"))]


class _HtmlText(HTMLParser):
    """The text of an HTML page outside <script>, <style> and <head>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)
