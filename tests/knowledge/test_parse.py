"""Parsing: real PDF and DOCX files made here, Markdown, HTML, JSON, CSV and code read into
sections with their headings, pages and lines; files that cannot be read refused by name."""

from __future__ import annotations

import io
import re
import zipfile

import docx
import pytest
from fpdf import FPDF
from PIL import Image

from app.errors import InvalidRequest
from app.knowledge.parse import (
    SUPPORTED,
    DocumentError,
    Section,
    kind_of,
    looks_binary,
    parse,
)

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def make_pdf(
    pages: list[str], *, title: str | None = None, owner: str = "", user: str | None = None
) -> bytes:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    if owner:
        pdf.set_encryption(owner_password=owner, user_password=user)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly Review", 0)
    document.add_heading("Sales", 1)
    document.add_paragraph("Sales grew in every region.")
    document.add_paragraph("Berlin opened", style="List Bullet")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Revenue (merged)"
    table.cell(0, 1).merge(table.cell(0, 2))
    table.cell(1, 0).text = "North"
    table.cell(1, 1).text = "12"
    table.cell(1, 2).text = "up"
    document.add_heading("Online", 2)
    document.add_paragraph("The shop doubled its orders.")
    document.add_heading("Costs", 1)
    document.add_paragraph("Costs stayed flat.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def refusal(filename: str, content: bytes) -> str:
    with pytest.raises(DocumentError) as caught:
        parse(filename, content)
    assert caught.value.status == 400
    assert caught.value.param == "file"
    assert isinstance(caught.value, InvalidRequest)
    return caught.value.message


# PDF


def test_pdf_pages_are_sections_with_their_page_numbers() -> None:
    content = make_pdf(
        ["The first page talks about apples.", "", "The third page talks about pears."],
        title="Fruit Report",
    )
    doc = parse("fruit.pdf", content)
    assert doc.kind == "pdf"
    assert doc.title == "Fruit Report"
    assert doc.sections == [
        Section("The first page talks about apples.", page=1),
        Section("The third page talks about pears.", page=3),
    ]


def test_a_pdf_without_a_title_is_named_after_its_file() -> None:
    assert parse("q3 notes.pdf", make_pdf(["Some text."])).title == "q3 notes"


def test_a_pdf_with_a_user_password_is_refused_by_name() -> None:
    content = make_pdf(["Secret plans."], owner="owner", user="reader")
    assert refusal("report.pdf", content) == "report.pdf: the PDF is encrypted"


def test_a_pdf_encrypted_with_an_empty_user_password_is_read() -> None:
    content = make_pdf(["Anyone may read this."], owner="owner")
    assert b"/Encrypt" in content
    assert parse("open.pdf", content).sections == [Section("Anyone may read this.", page=1)]


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_pdf_is_refused_whole(cut: float) -> None:
    content = make_pdf(["Page one.", "Page two.", "Page three."])
    message = refusal("x.pdf", content[: int(len(content) * cut)])
    assert message.startswith("x.pdf: not a readable PDF (")


def test_a_pdf_of_scanned_images_has_no_text_layer() -> None:
    image = io.BytesIO()
    Image.new("RGB", (40, 40), "gray").save(image, "PNG")
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=100)
    assert refusal("scan.pdf", bytes(pdf.output())) == "scan.pdf: the PDF has no text layer"


def test_a_file_named_pdf_that_is_not_one_is_refused_before_parsing() -> None:
    assert refusal("x.pdf", b"hello") == "x.pdf: not a readable PDF (no PDF header)"


# DOCX


def test_docx_headings_paragraphs_and_tables() -> None:
    doc = parse("review.docx", make_docx())
    assert doc.kind == "docx"
    assert doc.title == "Quarterly Review"
    assert doc.sections == [
        Section("Sales grew in every region.", ("Sales",)),
        Section("- Berlin opened", ("Sales",)),
        Section("Region | Revenue (merged)", ("Sales",)),
        Section("North | 12 | up", ("Sales",)),
        Section("The shop doubled its orders.", ("Sales", "Online")),
        Section("Costs stayed flat.", ("Costs",)),
    ]


def test_a_corrupt_docx_is_refused_by_name() -> None:
    content = make_docx()
    message = refusal("memo.docx", content[: len(content) // 2])
    assert message.startswith("memo.docx: not a readable DOCX (")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("content.xml", "<x/>")
    message = refusal("memo.docx", archive.getvalue())
    assert message == "memo.docx: not a readable DOCX (no word/document.xml)"
    assert (
        refusal("memo.docx", b"plain text") == "memo.docx: not a readable DOCX (not a zip archive)"
    )


# Markdown

MARKDOWN = """\
---
title: ignored
---
# Install Guide

The gateway runs anywhere
Python runs.

## On Linux

- install Python
- run pip

```bash
pip install gateway

gateway serve
```

### Service

Write a unit file.

<!-- a comment -->

## On Windows

Use WSL.
"""


def test_markdown_sections_follow_the_headings_with_exact_lines() -> None:
    doc = parse("install.md", MARKDOWN.encode())
    assert doc.kind == "markdown"
    assert doc.title == "Install Guide"
    assert doc.sections == [
        Section("The gateway runs anywhere\nPython runs.", ("Install Guide",), first_line=6),
        Section("- install Python\n- run pip", ("Install Guide", "On Linux"), first_line=11),
        Section(
            "```bash\npip install gateway\n\ngateway serve\n```",
            ("Install Guide", "On Linux"),
            first_line=14,
            code=True,
        ),
        Section("Write a unit file.", ("Install Guide", "On Linux", "Service"), first_line=22),
        Section("Use WSL.", ("Install Guide", "On Windows"), first_line=28),
    ]
    lines = MARKDOWN.split("\n")
    for section in doc.sections:
        assert section.first_line is not None
        start = section.first_line - 1
        assert "\n".join(lines[start : start + section.text.count("\n") + 1]) == section.text


def test_markdown_without_a_level_one_heading_is_named_after_its_file() -> None:
    doc = parse("notes.md", b"## Part\n\nText with `code` in *it*.\n")
    assert doc.title == "notes"
    assert doc.sections == [Section("Text with `code` in *it*.", ("Part",), first_line=3)]


# HTML

HTML = b"""<!DOCTYPE html>
<html><head><title>Gateway Docs</title><style>p { color: red }</style></head>
<body>
<nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<h1>Gateway <em>manual</em></h1>
<p>The gateway speaks
the OpenAI API.</p>
<script>var tracking = true;</script>
<h2>Setup</h2>
<ul><li>Install it</li><li>Run it</li></ul>
<pre><code>gateway serve --port 8000</code></pre>
<table><tr><th>setting</th><th>default</th></tr><tr><td>PORT</td><td>8000</td></tr></table>
<div>Loose text <b>with bold</b><br>on two lines</div>
</body></html>
"""


def test_html_headings_blocks_and_lines() -> None:
    doc = parse("manual.html", HTML)
    assert doc.kind == "html"
    assert doc.title == "Gateway Docs"
    setup = ("Gateway manual", "Setup")
    assert doc.sections == [
        Section("The gateway speaks\nthe OpenAI API.", ("Gateway manual",), first_line=6),
        Section("- Install it", setup, first_line=10),
        Section("- Run it", setup, first_line=10),
        Section("gateway serve --port 8000", setup, first_line=11, code=True),
        Section("setting | default", setup, first_line=12),
        Section("PORT | 8000", setup, first_line=12),
        Section("Loose text with bold\non two lines", setup, first_line=13),
    ]
    text = " ".join(section.text for section in doc.sections)
    assert "tracking" not in text
    assert "Home" not in text
    assert "color" not in text


def test_html_without_a_title_takes_its_first_h1() -> None:
    doc = parse("page.htm", b"<p>intro</p><h1>Real Title</h1><p>body</p>")
    assert doc.title == "Real Title"
    assert [section.text for section in doc.sections] == ["intro", "body"]


def test_html_with_nothing_to_read_is_refused() -> None:
    message = refusal("empty.html", b"<html><script>x()</script></html>")
    assert message == "empty.html: no text in the document"
    assert refusal("c.html", b"<!-- only -->") == "c.html: no text in the document"


# JSON and CSV


def test_json_laid_out_is_quoted_by_member_with_lines() -> None:
    content = b'{\n  "name": "gateway",\n  "ports": {\n    "http": 8000\n  },\n  "tags": []\n}\n'
    doc = parse("config.json", content)
    assert doc.kind == "json"
    assert doc.title == "config"
    assert doc.sections == [
        Section('"name": "gateway"', first_line=2),
        Section('"ports": {\n    "http": 8000\n  }', ("ports",), first_line=3),
        Section('"tags": []', first_line=6),
    ]


def test_json_on_one_line_is_pretty_printed_without_lines() -> None:
    doc = parse("data.json", b'[{"id": 1, "name": "Ann"}, {"id": 2}]')
    assert doc.sections == [
        Section('{\n  "id": 1,\n  "name": "Ann"\n}'),
        Section('{\n  "id": 2\n}'),
    ]


def test_invalid_json_is_refused_with_its_position() -> None:
    message = refusal("bad.json", b'{\n  "a": 1,\n  "b": \n}')
    assert message == "bad.json: not valid JSON (Expecting value at line 4, column 1)"
    message = refusal("log.jsonl", b'{"a": 1}\n\n{"a": \n')
    assert message == "log.jsonl: not valid JSON Lines (Expecting value at line 3, column 7)"
    assert refusal("empty.json", b"{}") == "empty.json: no text in the document"


def test_json_lines_are_sections_with_their_lines() -> None:
    doc = parse("events.jsonl", b'{"event": "start"}\n\n{"event": "stop"}\n')
    assert doc.sections == [
        Section('{"event": "start"}', first_line=1),
        Section('{"event": "stop"}', first_line=3),
    ]


def test_csv_rows_describe_themselves() -> None:
    content = b'name,city,note\nAnn,Paris,\n\n"Bob",Berlin,"two\nlines"\nCy,Rome,x,extra\n'
    doc = parse("people.csv", content)
    assert doc.kind == "csv"
    assert doc.sections == [
        Section("name: Ann; city: Paris", first_line=2),
        Section("name: Bob; city: Berlin; note: two\nlines", first_line=4),
        Section("name: Cy; city: Rome; note: x; column 4: extra", first_line=6),
    ]


def test_csv_delimiters_are_found() -> None:
    semicolons = parse("prices.csv", b"item;price\napple;1,20\npear;0,90\n")
    assert [s.text for s in semicolons.sections] == [
        "item: apple; price: 1,20",
        "item: pear; price: 0,90",
    ]
    tabs = parse("prices.tsv", b"item\tprice\napple\t1.20\n")
    assert [s.text for s in tabs.sections] == ["item: apple; price: 1.20"]


# Code and text

PYTHON = b'''\
"""Tools."""

import os


# The answer.
@cache
def answer() -> int:
    return 42


class Shelf:
    def put(self) -> None:
        pass
'''


def test_python_is_code_under_its_definitions() -> None:
    doc = parse("tools.py", PYTHON)
    assert doc.kind == "code"
    assert doc.title == "tools"
    assert doc.sections == [
        Section('"""Tools."""\n\nimport os', first_line=1, code=True),
        Section(
            "# The answer.\n@cache\ndef answer() -> int:\n    return 42",
            ("def answer",),
            first_line=6,
            code=True,
        ),
        Section(
            "class Shelf:\n    def put(self) -> None:\n        pass",
            ("class Shelf",),
            first_line=12,
            code=True,
        ),
    ]


@pytest.mark.parametrize(
    ("filename", "source", "headings"),
    [
        ("main.go", "package main\n\nfunc (s *Server) Start() {\n}\n\ntype Config struct{}\n",
         [(), ("func (s *Server) Start",), ("type Config",)]),
        ("app.ts", "import x from 'y'\n\nexport async function load() {}\n"
         "export const save = async (a: A) => a\nclass Store {}\n",
         [(), ("function load",), ("const save",), ("class Store",)]),
        ("lib.rs", "use std::io;\n\npub fn run() {}\n\nimpl Display for Foo {\n}\n",
         [(), ("fn run",), ("impl Display for Foo",)]),
        ("main.c", "#include <stdio.h>\n\nint main(int argc, char **argv)\n{\n  return 0;\n}\n",
         [(), ("main",)]),
        ("compose.yaml", "version: '3'\nservices:\n  web:\n    image: x\n",
         [(), ("services",)]),
        ("pyproject.toml", "[project]\nname = 'x'\n\n[tool.mypy]\nstrict = true\n",
         [("project",), ("tool.mypy",)]),
        ("notes.sql", "-- users\nCREATE TABLE users (id int);\n",
         [("TABLE users",)]),
        ("run.sh", "#!/bin/sh\nset -e\n\ndeploy() {\n  echo hi\n}\n",
         [(), ("deploy",)]),
    ],
)  # fmt: skip
def test_code_definitions_become_headings(
    filename: str, source: str, headings: list[tuple[str, ...]]
) -> None:
    sections = parse(filename, source.encode()).sections
    assert [section.heading_path for section in sections] == headings
    assert all(section.code for section in sections)
    lines = source.split("\n")
    for section in sections:
        assert section.first_line is not None
        assert section.text.split("\n")[0] == lines[section.first_line - 1]


def test_text_paragraphs_with_their_lines() -> None:
    content = b"\xef\xbb\xbfFirst paragraph\r\nstill first.\r\n\r\n\r\n  Second one.\r\n"
    doc = parse("readme.txt", content)
    assert doc.kind == "text"
    assert doc.sections == [
        Section("First paragraph\nstill first.", first_line=1),
        Section("  Second one.", first_line=5),
    ]


# What is refused


def test_unsupported_types_are_refused_before_parsing() -> None:
    message = refusal("a.exe", b"MZ\x90\x00")
    assert message.startswith("a.exe: unsupported file type '.exe' (supported: .adoc .csv ")
    assert ".pdf" in message
    assert ".py" in message
    assert refusal("Makefile", b"all:").startswith("Makefile: unsupported file type (no extension)")
    with pytest.raises(DocumentError, match=r"unsupported file type '\.png'"):
        kind_of("photo.png", PNG_HEAD)


@pytest.mark.parametrize("filename", ["notes.txt", "data.json", "page.html", "main.py"])
def test_binary_content_is_refused_as_text(filename: str) -> None:
    with pytest.raises(DocumentError, match=r"a binary file, not (text|json|html|code)"):
        kind_of(filename, PNG_HEAD)
    assert refusal(filename, PNG_HEAD + b"\x00" * 100).startswith(f"{filename}: a binary file")


@pytest.mark.parametrize(
    ("filename", "text", "encoding"),
    [
        (
            "latin.txt",
            "Der König von München trägt eine Krone. Café au lait coûte cher.",
            "latin-1",
        ),
        ("french.md", "# Menu\n\nLe café coûte cher à Paris. Où est la gare ?", "cp1252"),
        ("quotes.txt", "He said “good morning” \u2013 and left for Zürich.", "cp1252"),
        ("polish.txt", "Zażółć gęślą jaźń. Właściwie to był piękny dzień w Łodzi.", "cp1250"),
        ("russian.txt", "Привет, как дела? Это простой текст на русском языке.", "cp1251"),
        ("wide.txt", "hello wörld, in UTF-16 with its byte order mark", "utf-16"),
        ("page.html", "<title>Café</title><p>Crème brûlée for 7 €.</p>", "cp1252"),
    ],
)
def test_text_in_other_encodings_is_read(filename: str, text: str, encoding: str) -> None:
    data = text.encode(encoding)
    assert kind_of(filename, data) != ""
    doc = parse(filename, data)
    read = " ".join([doc.title, *(section.text for section in doc.sections)])
    for word in re.findall(r"\w+", re.sub(r"<[^>]+>", " ", text)):
        assert word in read, (word, read)


def test_text_in_no_encoding_is_refused() -> None:
    assert refusal("cut.txt", "hello".encode("utf-16")[:-1]) == (
        "cut.txt: not text in any encoding recognised"
    )
    assert kind_of("cut.txt", "naïve".encode()[:3]) == "text"


def test_empty_files_are_refused() -> None:
    assert refusal("empty.md", b"") == "empty.md: the file is empty"
    assert refusal("blank.txt", b" \n\n ") == "blank.txt: the file is empty"
    assert refusal("rule.md", b"---\n\n***\n") == "rule.md: no text in the document"


def test_kinds_and_binary_test() -> None:
    assert {".pdf", ".docx", ".md", ".html", ".txt", ".json", ".csv", ".py", ".go"} <= SUPPORTED
    assert kind_of("REPORT.PDF", b"%PDF-1.7\n") == "pdf"
    assert kind_of("Guide.Markdown", b"# hi") == "markdown"
    assert looks_binary(PNG_HEAD)
    assert not looks_binary("plain naïve text".encode())
    assert not looks_binary("wide text".encode("utf-16"))
    assert not looks_binary(b"")
