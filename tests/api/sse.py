"""Reading a streamed answer off the wire, as a raw SSE client would."""

from __future__ import annotations

import json
from typing import Any

import httpx


def sse_events(
    url: str, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> tuple[httpx.Response, list[Any]]:
    """The raw `data:` payloads of a streamed answer (JSON-decoded, `[DONE]` kept as text)."""
    with httpx.stream("POST", url + path, json=body, timeout=30) as resp:
        events = [
            line[6:] if line == "data: [DONE]" else json.loads(line[6:])
            for line in resp.iter_lines()
            if line.startswith("data: ")
        ]
    return resp, events
