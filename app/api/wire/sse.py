"""Server-sent events framing shared by the wires that stream, and what they send when a turn
fails after the first byte."""

from __future__ import annotations

import logging

from app.errors import GatewayError

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def mid_answer(exc: Exception, what: str) -> GatewayError:
    """`exc`, raised once `what` had begun, as the error to send in-band, and logged: a
    gateway error as it is, anything else as a failure whose trace goes to the log only."""
    if isinstance(exc, GatewayError):
        log.warning("%s failed mid-answer: %s", what, exc.message)
        return exc
    log.error("%s failed mid-answer", what, exc_info=exc)
    return GatewayError("the gateway failed unexpectedly; see its log for details")


def comment(text: str) -> bytes:
    """A `: comment` line: clients ignore it, proxies see traffic."""
    return b": " + text.encode() + b"\n\n"
