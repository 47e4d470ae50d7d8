"""Server-sent events in OpenAI's framing; failures after the first byte go in-band."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson

from app.chat.turn import Answer
from app.errors import GatewayError

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


async def encode(turn: Answer) -> AsyncIterator[bytes]:
    """`data: <chunk>` events, then `data: [DONE]`. An error mid-stream becomes an
    `{"error": {...}}` event before `[DONE]`, never a silently truncated answer; a string from
    the answer becomes a `: comment` line, which clients ignore and proxies see as traffic."""
    try:
        async for chunk in turn.chunks():
            if isinstance(chunk, str):
                yield b": " + chunk.encode() + b"\n\n"
            else:
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except GatewayError as exc:
        log.warning("stream from %s failed mid-answer: %s", turn.model, exc.message)
        yield b"data: " + orjson.dumps(exc.body()) + b"\n\n"
    except Exception:
        log.exception("stream from %s failed mid-answer", turn.model)
        yield b"data: " + orjson.dumps(GatewayError("internal error").body()) + b"\n\n"
    yield DONE
