"""Files read into a ParsedDocument: the type is checked from the name and the first bytes before
anything is parsed, and a file that cannot be read whole is refused (DocumentError), never half
read."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import PurePath

import charset_normalizer

from app.knowledge import code, data, markup, office
from app.knowledge.document import DocumentError, ParsedDocument, Section, lines_section

__all__ = [
    "HEAD_BYTES",
    "SUPPORTED",
    "DocumentError",
    "ParsedDocument",
    "Section",
    "kind_of",
    "looks_binary",
    "parse",
]

HEAD_BYTES = 8192
"""How many leading bytes `kind_of` and `looks_binary` look at."""

_KINDS = {
    ".pdf": "pdf",
    ".docx": "docx",
    **dict.fromkeys((".md", ".markdown", ".mdown", ".mkd", ".mdx"), "markdown"),
    **dict.fromkeys((".txt", ".text", ".rst", ".adoc", ".log"), "text"),
    **dict.fromkeys((".html", ".htm", ".xhtml"), "html"),
    **dict.fromkeys((".json", ".jsonl", ".ndjson"), "json"),
    **dict.fromkeys((".csv", ".tsv"), "csv"),
    **dict.fromkeys(code.EXTENSIONS, "code"),
}
SUPPORTED = frozenset(_KINDS)
"""The extensions `parse` reads, lower case with the dot."""
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def looks_binary(head: bytes) -> bool:
    """Whether a file that starts with `head` is binary rather than text: it has a NUL byte
    (git's test), which text files do not have, unless they are UTF-16 with a byte order mark."""
    return b"\0" in head and not head.startswith(_UTF16_BOMS)


def kind_of(filename: str, head: bytes) -> str:
    """The kind of document `filename` is (pdf, markdown, text, html, docx, json, csv or code),
    from its extension and its first bytes `head`; a DocumentError for a type not supported or
    content that is not of that type."""
    extension = PurePath(filename).suffix.lower()
    kind = _KINDS.get(extension)
    if kind is None:
        found = f"'{extension}'" if extension else "(no extension)"
        documents = " ".join(sorted(SUPPORTED - code.EXTENSIONS))
        supported = f"{documents} and source code such as .py .js .ts .go .rs .java .sh .yaml"
        raise DocumentError(f"{filename}: unsupported file type {found} (supported: {supported})")
    if kind == "pdf":
        if b"%PDF-" not in head[:1024]:
            raise DocumentError(f"{filename}: not a readable PDF (no PDF header)")
    elif kind == "docx":
        if not head.startswith(b"PK\x03\x04"):
            raise DocumentError(f"{filename}: not a readable DOCX (not a zip archive)")
    elif looks_binary(head):
        raise DocumentError(f"{filename}: a binary file, not {kind}")
    return kind


def parse(filename: str, content: bytes) -> ParsedDocument:
    """The document in the file `filename` holding `content`; a DocumentError when it cannot be
    read whole or has no text. Its title, unless the document names one, is the file's name
    without the extension."""
    kind = kind_of(filename, content[:HEAD_BYTES])
    if not content.strip():
        raise DocumentError(f"{filename}: the file is empty")
    extension = PurePath(filename).suffix.lower()
    title = ""
    if kind == "pdf":
        title, sections = office.pdf_sections(filename, content)
    elif kind == "docx":
        title, sections = office.docx_sections(filename, content)
    elif kind == "html":
        title, sections = markup.html_sections(_decode(filename, content).encode())
    else:
        text = _decode(filename, content)
        if kind == "markdown":
            title, sections = markup.markdown_sections(text)
        elif kind == "json":
            sections = data.json_sections(filename, text, lines=extension != ".json")
        elif kind == "csv":
            sections = data.csv_sections(filename, text, tabs=extension == ".tsv")
        elif kind == "code":
            sections = code.sections(extension, text)
        else:
            sections = list(_paragraphs(text))
    if not sections:
        detail = "the PDF has no text layer" if kind == "pdf" else "no text in the document"
        raise DocumentError(f"{filename}: {detail}")
    return ParsedDocument(title or PurePath(filename).stem, kind, sections)


def _decode(filename: str, content: bytes) -> str:
    """Text in UTF-8 (with or without a byte order mark), in UTF-16 with one, or else in the
    encoding charset-normalizer finds (Windows-1252 or Latin-1 from an older editor, say)."""
    try:
        if content.startswith(_UTF16_BOMS):
            text = content.decode("utf-16")
        else:
            text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        found = charset_normalizer.from_bytes(content)
        best = found.best()
        if best is None:
            raise DocumentError(f"{filename}: not text in any encoding recognised") from None
        # Windows-1252 on a tie (it ties with Central European code pages on most Western text)
        tied = (m for m in found if (m.chaos, m.coherence) == (best.chaos, best.coherence))
        text = str(next((m for m in tied if m.encoding == "cp1252"), best))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _paragraphs(text: str) -> Iterator[Section]:
    """Plain text's paragraphs: the runs of lines between blank ones."""
    lines = text.split("\n")
    start = 0
    for number, line in enumerate([*lines, ""]):
        if not line.strip():
            if section := lines_section(lines[start:number], start):
                yield section
            start = number + 1
