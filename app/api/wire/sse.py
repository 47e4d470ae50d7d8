"""Server-sent events framing shared by the wires that stream."""

from __future__ import annotations

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def comment(text: str) -> bytes:
    """A `: comment` line: clients ignore it, proxies see traffic."""
    return b": " + text.encode() + b"\n\n"
