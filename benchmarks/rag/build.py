"""Build the retrieval corpus: `python -m benchmarks.rag.build OUT_DIR`.

Every file under `corpus_src/` becomes one document in OUT_DIR. `NAME.pdf.txt` and
`NAME.docx.txt` are rendered into `NAME.pdf` (fpdf2, core Helvetica, so latin-1 text only) and
`NAME.docx` (python-docx); every other file is copied as it is. The sources use a small markup:
`# ` a title, `## ` and `### ` headings, `- ` a bullet, a line `[page]` a page break, and
lines that follow each other form one paragraph. The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docx
from docx.enum.text import WD_BREAK
from fpdf import FPDF

SOURCES = Path(__file__).resolve().parent / "corpus_src"
RENDERED = (".pdf.txt", ".docx.txt")
FIXED_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Block:
    """One unit of a rendered document's source: its kind and its text."""

    kind: str  # "title" | "h2" | "h3" | "bullet" | "paragraph" | "page"
    text: str = ""


def blocks(source: str) -> Iterator[Block]:
    """The blocks of a `.pdf.txt` / `.docx.txt` source, in order."""
    paragraph: list[str] = []
    for raw in [*source.splitlines(), ""]:
        line = raw.strip()
        starts_block = not line or line == "[page]" or line.startswith(("#", "- "))
        if starts_block and paragraph:
            yield Block("paragraph", " ".join(paragraph))
            paragraph = []
        if not line:
            continue
        if line == "[page]":
            yield Block("page")
        elif line.startswith("### "):
            yield Block("h3", line[4:])
        elif line.startswith("## "):
            yield Block("h2", line[3:])
        elif line.startswith("# "):
            yield Block("title", line[2:])
        elif line.startswith("- "):
            yield Block("bullet", line[2:])
        else:
            paragraph.append(line)


class _Pdf(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.running_title = title

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.cell(0, 10, f"{self.running_title} - page {self.page_no()}", align="C")


def render_pdf(source: str) -> bytes:
    """A text-layer PDF of the source, with a running footer naming the title and page."""
    parts = list(blocks(source))
    title = next(block.text for block in parts if block.kind == "title")
    pdf = _Pdf(title)
    pdf.set_creation_date(FIXED_TIME)
    pdf.set_title(title)
    pdf.set_author("Retrieval benchmark")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    styles = {"title": ("B", 18, 10.0), "h2": ("B", 14, 8.0), "h3": ("B", 12, 7.0)}
    for block in parts:
        text = block.text
        text.encode("latin-1")  # core fonts only: fail loudly on anything else
        if block.kind == "page":
            pdf.add_page()
            continue
        style, size, height = styles.get(block.kind, ("", 11, 5.5))
        pdf.set_font("Helvetica", style=style, size=size)
        if block.kind in styles:
            pdf.ln(2)
        if block.kind == "bullet":
            text = f"-  {text}"
        pdf.multi_cell(0, height, text, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    return bytes(pdf.output())


def render_docx(source: str) -> bytes:
    """A Word document of the source: a Title, Heading 1/2 styles, bullets, page breaks."""
    document = docx.Document()
    properties = document.core_properties
    properties.author = "Retrieval benchmark"
    properties.created = properties.modified = FIXED_TIME.replace(tzinfo=None)
    properties.revision = 1
    for block in blocks(source):
        if block.kind == "title":
            document.add_heading(block.text, level=0)
            properties.title = block.text
        elif block.kind == "h2":
            document.add_heading(block.text, level=1)
        elif block.kind == "h3":
            document.add_heading(block.text, level=2)
        elif block.kind == "bullet":
            document.add_paragraph(block.text, style="List Bullet")
        elif block.kind == "page":
            document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        else:
            document.add_paragraph(block.text)
    buffer = io.BytesIO()
    document.save(buffer)
    return _fixed_zip_times(buffer.getvalue())


def _fixed_zip_times(data: bytes) -> bytes:
    """The same zip with every member stamped FIXED_TIME (python-docx stamps the clock)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            member = zipfile.ZipInfo(info.filename, FIXED_TIME.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(member, src.read(info.filename))
    return out.getvalue()


def documents() -> Iterator[tuple[str, bytes]]:
    """Every document of the corpus as (file name, bytes), in file-name order."""
    for path in sorted(SOURCES.iterdir()):
        name = path.name
        if name.endswith(".pdf.txt"):
            yield name.removesuffix(".txt"), render_pdf(path.read_text("utf-8"))
        elif name.endswith(".docx.txt"):
            yield name.removesuffix(".txt"), render_docx(path.read_text("utf-8"))
        else:
            yield name, path.read_bytes()


def build(out_dir: Path) -> list[Path]:
    """Write the corpus into `out_dir` (created if needed); the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in documents():
        target = out_dir / name
        target.write_bytes(data)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.rag.build OUT_DIR", file=sys.stderr)
        return 2
    written = build(Path(argv[0]))
    print(f"{len(written)} documents written to {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
