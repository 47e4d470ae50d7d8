"""Shared HTTP plumbing for providers that reach their upstream over the pooled aiohttp client:
one place that turns aiohttp's exceptions and upstream statuses into `app.errors`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson

from app.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ProviderUnavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)


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
    error body, else the body's text."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()[:500] or "no error body"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            return str(err.get("message") or err)[:500]
        return str(err)[:500]
    return str(data)[:500]


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
    message = error_message(await resp.read())
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
        raise InvalidRequest(f"{provider}: {message}")
    if status in (502, 503):
        raise ProviderUnavailable(
            provider,
            f"upstream answered {status}: {message}",
            retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
        )
    raise UpstreamError(provider, f"upstream answered {status}: {message}")


@asynccontextmanager
async def translate_errors(provider: str) -> AsyncIterator[None]:
    """Map the transport's failures to `app.errors`; errors already mapped pass through."""
    try:
        yield
    except GatewayError:
        raise
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        raise UpstreamTimeout(
            provider, f"no answer within the timeout ({exc or 'timed out'})"
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        raise ProviderUnavailable(provider, f"cannot connect: {exc.os_error or exc}") from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise UpstreamError(provider, f"connection lost mid-answer ({exc})") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(provider, f"{type(exc).__name__}: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(provider, f"sent malformed JSON ({exc})") from exc
