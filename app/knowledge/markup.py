"""Markdown and HTML read into sections: a heading opens a section, each paragraph, list, table
row or code block below it is one."""

from __future__ import annotations

import re
from typing import Any

import lxml.html
from lxml import etree
from markdown_it import MarkdownIt
from markdown_it.token import Token

from app.knowledge.document import Headings, Section, lines_section, table_row

_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.DOTALL)
_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_sections(text: str) -> tuple[str, list[Section]]:
    """The first level-1 heading and the sections of Markdown `text`: every top-level block as
    written in the source, with its lines."""
    # Front matter turns into blank lines, so that line numbers still match the file.
    text = _FRONT_MATTER.sub(lambda match: "\n" * match.group().count("\n"), text)
    lines = text.split("\n")
    tokens = _MARKDOWN.parse(text)
    headings = Headings()
    title = ""
    sections: list[Section] = []
    for position, token in enumerate(tokens):
        if token.level != 0 or token.nesting == -1 or token.map is None:
            continue
        if token.type == "heading_open":
            level, heading = int(token.tag[1]), _plain(tokens[position + 1])
            if heading:
                headings.enter(level, heading)
                title = title or (heading if level == 1 else "")
        elif token.type != "hr" and not _comment(token):
            start, end = token.map
            code = token.type in ("fence", "code_block")
            if section := lines_section(lines[start:end], start, headings.path, code=code):
                sections.append(section)
    return title, sections


def _plain(inline: Token) -> str:
    parts = [
        child.content if child.type in ("text", "code_inline") else " "
        for child in inline.children or []
        if child.type in ("text", "code_inline", "softbreak", "hardbreak")
    ]
    return _one_line("".join(parts))


def _comment(token: Token) -> bool:
    content = token.content.strip()
    return token.type == "html_block" and content.startswith("<!--") and content.endswith("-->")


_DROPPED = (
    "head", "script", "style", "noscript", "template", "nav", "svg", "canvas", "iframe", "object",
    "form", "button", "select",
)  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
    "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "header", "hgroup",
    "hr", "html", "li", "main", "menu", "ol", "p", "pre", "section", "summary", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "ul", *_HEADINGS,
}  # fmt: skip


def html_sections(content: bytes) -> tuple[str, list[Section]]:
    """The <title> (or first <h1>) and the sections of an HTML page in UTF-8: headings h1-h6
    give the path; paragraphs, list items, table rows (`cell | cell`) and <pre> blocks are
    sections with the source line they start on. Scripts, styles, navigation and forms are
    left out."""
    try:
        parser = lxml.html.HTMLParser(encoding="utf-8")  # a parser serves one thread at a time
        root = lxml.html.document_fromstring(content, parser=parser)
    except etree.ParserError:  # nothing but comments and spaces
        return "", []
    title = _one_line(root.findtext("head/title") or "")
    for element in list(root.iter(etree.Comment, etree.ProcessingInstruction, *_DROPPED)):
        element.drop_tree()
    for br in root.iter("br"):
        if not (br.tail or "").startswith("\n"):
            br.tail = "\n" + (br.tail or "")
    reader = _HtmlReader()
    reader.walk(root)
    return title or reader.first_h1, reader.sections


class _HtmlReader:
    def __init__(self) -> None:
        self.headings = Headings()
        self.first_h1 = ""
        self.sections: list[Section] = []
        self._loose: list[tuple[str, int]] = []

    def walk(self, element: Any) -> None:
        tag = element.tag
        if tag in _HEADINGS:
            self._flush()
            heading = _one_line(element.text_content())
            if heading:
                self.headings.enter(_HEADINGS[tag], heading)
                self.first_h1 = self.first_h1 or (heading if tag == "h1" else "")
        elif tag == "pre":
            self._flush()
            self._add(element.text_content(), element.sourceline, code=True)
        elif tag == "tr":
            self._flush()
            cells = (cell.text_content() for cell in element if cell.tag in ("td", "th"))
            self._add(table_row(cells), element.sourceline)
        elif tag in _BLOCKS and not any(
            below.tag in _BLOCKS for below in element.iterdescendants()
        ):
            self._flush()
            bullet = "- " if tag == "li" else ""
            self._add(bullet + element.text_content(), element.sourceline)
        else:
            self._loose.append((element.text or "", element.sourceline))
            for child in element:
                if child.tag in _BLOCKS:
                    self._flush()
                    self.walk(child)
                else:
                    self._loose.append((child.text_content(), child.sourceline))
                end = child.sourceline + child.text_content().count("\n")
                self._loose.append((child.tail or "", end))
            self._flush()

    def _flush(self) -> None:
        """Adds the text met between blocks since the last one as a section of its own."""
        if self._loose:
            self._add("".join(text for text, _ in self._loose), self._loose[0][1])
            self._loose = []

    def _add(self, text: str, line: int, *, code: bool = False) -> None:
        """Adds `text`, which starts on source line `line`, with its spaces tidied (but for code)
        and source lines kept."""
        lines = text.split("\n")
        if not code:
            lines = [_one_line(line) for line in lines]
        if section := lines_section(lines, line - 1, self.headings.path, code=code):
            self.sections.append(section)


def _one_line(text: str) -> str:
    return " ".join(text.split())
