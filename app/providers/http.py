"""Shared HTTP plumbing for providers that reach their upstream over the pooled aiohttp client:
one place that turns aiohttp's exceptions and upstream statuses into `app.errors`."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from app.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ProviderUnavailable,
    ProviderUnreachable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)

log = logging.getLogger(__name__)


async def iter_lines(content: aiohttp.StreamReader) -> AsyncGenerator[bytes, None]:
    """The lines of a streamed body, split from whatever pieces arrive: one await per network
    read rather than one per line. A caller that may stop before the end reads it inside
    `contextlib.aclosing`: an async generator dropped unfinished is closed by the event loop's
    finaliser hook, through `call_soon_threadsafe` (a write to the loop's wake-up fd, one more
    loop turn and a task), for every stream."""
    buffer = b""
    async for piece in content.iter_any():
        buffer += piece
        if b"\n" in piece:
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line
    if buffer:
        yield buffer


def error_message(raw: bytes) -> str:
    """The message inside an OpenAI (`{"error": {"message"}}`) or Ollama (`{"error": "..."}`)
    error body, or the problems a validation error (FastAPI's `{"detail": [...]}`) lists, without
    the request's values that it quotes; else the body's text."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()[:500] or "no error body"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            return str(err.get("message") or err)[:500]
        if isinstance(err, list) and err and all(isinstance(p, dict) for p in err):
            return "; ".join(map(_problem, err))[:500]
        return str(err)[:500]
    return str(data)[:500]


def _problem(problem: dict[str, Any]) -> str:
    """`body.messages.0.content: Field required`, from one item of a validation error, whose
    `input` (the value refused: a message's text, it may be) is left out."""
    where = ".".join(str(part) for part in problem.get("loc") or ())
    what = str(problem.get("msg") or problem.get("type") or "invalid")
    return f"{where}: {what}" if where else what


def _rejection(provider: str, raw: bytes) -> InvalidRequest:
    """An upstream's 4xx refusal of the request; an OpenAI error object (`{"error": {...}}`, or
    vLLM's bare one) keeps its `type`, `code` and `param` as the upstream sent them."""
    message = f"{provider}: {error_message(raw)}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    err: Any = data.get("error", data) if isinstance(data, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("type"), str):
        return InvalidRequest(message)
    code, param = err.get("code"), err.get("param")
    return UpstreamRejected(
        message,
        error_type=err["type"],
        code=code if isinstance(code, str | int) else None,
        param=param if isinstance(param, str) else None,
    )


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def raise_for_status(provider: str, model: str, resp: aiohttp.ClientResponse) -> None:
    if resp.status < 400:
        return
    raw = await resp.read()
    message = error_message(raw)
    status = resp.status
    if status == 429:
        raise UpstreamRateLimited(
            provider, message, retry_after=retry_after_seconds(resp.headers.get("Retry-After"))
        )
    if status == 404:
        raise ModelNotFound(f"{provider}: model '{model}' not found ({message})")
    if status in (401, 403):
        raise UpstreamError(provider, f"rejected the gateway's credentials ({status}): {message}")
    if status in (400, 413, 422):
        raise _rejection(provider, raw)
    if status in (502, 503):
        raise ProviderUnavailable(
            provider,
            f"upstream answered {status}: {message}",
            retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
        )
    raise UpstreamError(provider, f"upstream answered {status}: {message}")


@asynccontextmanager
async def translate_errors(provider: str) -> AsyncIterator[None]:
    """Map the transport's failures to `app.errors`, in plain words a user may be shown (the
    transport's own words go to the log); errors already mapped pass through."""
    try:
        yield
    except GatewayError:
        raise
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        log.info("%s timed out: %r", provider, exc)
        raise UpstreamTimeout(provider, "stopped answering (no data within the timeout)") from exc
    except aiohttp.ClientConnectorError as exc:
        raise ProviderUnreachable(provider, f"cannot connect: {exc.os_error or exc}") from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        log.info("%s closed the connection: %r", provider, exc)
        raise UpstreamError(
            provider, "the connection closed before the answer was complete"
        ) from exc
    except aiohttp.ClientError as exc:
        # Not its repr: a response error's holds the request's headers, the upstream's key too.
        log.info("%s failed: %s: %s", provider, type(exc).__name__, exc)
        raise UpstreamError(
            provider, "the connection failed before the answer was complete"
        ) from exc
    except orjson.JSONDecodeError as exc:
        log.info("%s sent malformed JSON: %s", provider, exc)
        raise UpstreamError(provider, "sent an answer the gateway could not read") from exc
