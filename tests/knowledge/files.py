"""Real documents made by the tests: PDFs with fpdf2, DOCX with python-docx."""

from __future__ import annotations

import io

import docx
from fpdf import FPDF

BOILER = """# Boiler manual

## Pressure

The boiler pressure must stay between 1.2 and 1.5 bar when the system is cold. If it drops
below 1 bar, open the filling loop under the boiler until the gauge reads 1.3 bar.

## Radiators

Bleed the radiators every autumn with the square key that ships in the box. Start with the
radiator closest to the boiler.

## Warranty

The warranty lasts seven years when the boiler is serviced every twelve months by a registered
engineer.
"""


def pdf(pages: list[str], password: str | None = None) -> bytes:
    document = FPDF()
    document.set_font("Helvetica", size=11)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 6, text)
    if password:
        document.set_encryption(owner_password="owner", user_password=password)
    return bytes(document.output())


def word(title: str, sections: dict[str, str]) -> bytes:
    document = docx.Document()
    document.add_heading(title, level=0)
    for heading, text in sections.items():
        document.add_heading(heading, level=1)
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
