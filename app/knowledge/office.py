"""PDF (its text layer, page by page) and Word (DOCX) documents read into sections."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.document import Document as DocxDocument
from docx.table import Table, _Cell
from pypdf import PasswordType, PdfReader

from app.knowledge.document import DocumentError, Headings, Section, table_row

_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


def pdf_sections(filename: str, content: bytes) -> tuple[str, list[Section]]:
    """The title in a PDF's metadata and one section per page with text. A PDF that needs a
    password is refused; one encrypted with an empty user password (readable by anyone, the
    owner password only restricting what may be done with it) is read."""
    # pypdf raises many kinds of exceptions on a damaged file, some only when a page is read.
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentError(f"{filename}: the PDF is encrypted")
        pages = [page.extract_text() for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except DocumentError:
        raise
    except Exception as error:
        raise DocumentError(f"{filename}: not a readable PDF ({error})") from error
    sections = []
    for number, text in enumerate(pages, 1):
        lines = [line.rstrip() for line in text.replace("\x00", "").split("\n")]
        page = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
        if page:
            sections.append(Section(page, page=number))
    return (title or "").strip(), sections


_HEADING = re.compile(r"heading ([1-9])", re.IGNORECASE)


def docx_sections(filename: str, content: bytes) -> tuple[str, list[Section]]:
    """A Word document's title (its Title paragraph, else its first level-1 heading, else the
    title in its properties) and sections: one per paragraph under its headings (styles
    Heading 1-9), list items with a bullet, and one per table row as `cell | cell`."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if "word/document.xml" not in archive.namelist():
                raise DocumentError(f"{filename}: not a readable DOCX (no word/document.xml)")
        return _read_docx(docx.Document(io.BytesIO(content)))
    except DocumentError:
        raise
    except Exception as error:
        raise DocumentError(f"{filename}: not a readable DOCX ({error})") from error


def _read_docx(document: DocxDocument) -> tuple[str, list[Section]]:
    headings = Headings()
    title = first_h1 = ""
    sections = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                if shown := table_row(cell.text for cell in _distinct(row.cells)):
                    sections.append(Section(shown, headings.path))
            continue
        text = item.text.strip()
        style = item.style.name if item.style is not None and item.style.name else ""
        heading = _HEADING.fullmatch(style)
        if not text:
            continue
        if style == "Title" and not title:
            title = text
        elif heading:
            headings.enter(int(heading[1]), text)
            first_h1 = first_h1 or (text if heading[1] == "1" else "")
        else:
            bullet = "- " if style.startswith("List") else ""
            sections.append(Section(bullet + text, headings.path))
    return title or first_h1 or (document.core_properties.title or "").strip(), sections


def _distinct(cells: tuple[_Cell, ...]) -> list[_Cell]:
    """The cells of a row, a cell merged across columns (repeated by python-docx) once."""
    return [cell for at, cell in enumerate(cells) if not at or cell != cells[at - 1]]
