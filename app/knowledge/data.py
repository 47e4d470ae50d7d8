"""JSON, JSON Lines and CSV read into sections: one per top-level member, line or row."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from itertools import zip_longest
from typing import Any

from app.knowledge.document import DocumentError, Section

_SNIFFED = 8192


def json_sections(filename: str, text: str, *, lines: bool) -> list[Section]:
    """A section per member of the top-level object or array (per line for JSON Lines), a
    member holding an object or array under its key as a heading. A file laid out on several
    lines is quoted as written, with line numbers; one on a single line is pretty-printed."""
    if lines:
        return _json_lines(filename, text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise DocumentError(f"{filename}: not valid JSON ({error.msg} at {where})") from None
    if value in ({}, [], None, ""):
        return []
    start = len(text) - len(text.lstrip())
    if not isinstance(value, dict | list):
        return [Section(text.strip(), first_line=text.count("\n", 0, start) + 1)]
    laid_out = "\n" in text.strip()
    sections = []
    line, counted = 1, 0
    for begin, end, key, member in _members(text, start):
        nested = member and isinstance(member, dict | list)
        heading_path = (key,) if key is not None and nested else ()
        if laid_out:
            line, counted = line + text.count("\n", counted, begin), begin
            sections.append(Section(text[begin:end], heading_path, first_line=line))
        else:
            shown = json.dumps(member, indent=2, ensure_ascii=False)
            if key is not None:
                shown = f"{json.dumps(key, ensure_ascii=False)}: {shown}"
            sections.append(Section(shown, heading_path))
    return sections


def _members(text: str, at: int) -> Iterator[tuple[int, int, str | None, Any]]:
    """Where each member of the valid JSON object or array at `at` in `text` starts and ends,
    with its key (None in an array) and its value."""
    decoder = json.JSONDecoder()
    keyed = text[at] == "{"
    at = _skip(text, at + 1)
    while text[at] not in "]}":
        begin, key = at, None
        if keyed:
            key, at = decoder.raw_decode(text, at)
            at = _skip(text, _skip(text, at) + 1)
        value, at = decoder.raw_decode(text, at)
        yield begin, at, key, value
        at = _skip(text, at)
        if text[at] == ",":
            at = _skip(text, at + 1)


def _skip(text: str, at: int) -> int:
    while text[at] in " \t\n\r":
        at += 1
    return at


def _json_lines(filename: str, text: str) -> list[Section]:
    sections = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as error:
            detail = f"not valid JSON Lines ({error.msg} at line {number}, column {error.colno})"
            raise DocumentError(f"{filename}: {detail}") from None
        sections.append(Section(line.strip(), first_line=number))
    return sections


def csv_sections(filename: str, text: str, *, tabs: bool) -> list[Section]:
    """A section per row after the header, shown as `column: value; column: value` (empty
    values left out), so that any group of rows says what it holds. The delimiter is a tab for
    `tabs`, else the one of `,;|<tab>` the first lines use."""
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab if tabs else csv.excel
    if not tabs:
        with contextlib.suppress(csv.Error):
            dialect = csv.Sniffer().sniff(text[:_SNIFFED], delimiters=",;\t|")
    reader = csv.reader(io.StringIO(text), dialect)
    header: list[str] | None = None
    columns: list[Section] = []
    sections = []
    start = 1
    try:
        for row in reader:
            first_line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                columns.append(Section(" | ".join(header), first_line=first_line))
                continue
            pairs = zip_longest(header, row, fillvalue="")
            shown = "; ".join(
                f"{name or f'column {number}'}: {value.strip()}"
                for number, (name, value) in enumerate(pairs, 1)
                if value.strip()
            )
            sections.append(Section(shown, first_line=first_line))
    except csv.Error as error:
        raise DocumentError(f"{filename}: not valid CSV ({error}, line {start})") from None
    return sections or columns
