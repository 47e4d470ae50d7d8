"""Identifiers for responses, tool calls and requests. They must be unique, not secret, so they
come from a fast non-cryptographic generator rather than one system call per id."""

from __future__ import annotations

from random import getrandbits


def new_id(prefix: str = "", hex_digits: int = 24) -> str:
    return f"{prefix}{getrandbits(hex_digits * 4):0{hex_digits}x}"
