"""Pure ASGI middleware (no per-request task or body copy): request ids and the access log, and
the request size limit."""

from __future__ import annotations

import logging
import re
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import RequestTooLarge
from app.ids import new_id
from app.ops.logging import Exchange, content_log, exchange, request_id
from app.security.ratelimit import send_error

log = logging.getLogger("app.access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Takes `X-Request-ID` from the request (or makes one), puts it in the logging context
    and on the response, and logs one access line when the response has been sent: with the
    model and tokens of the request's turn, the reason of a refusal, and (`log_content`,
    LOG_CONTENT) a DEBUG line with the user's message and the answer's beginning."""

    def __init__(self, app: ASGIApp, log_content: bool = False) -> None:
        self.app = app
        self.log_content = log_content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
                break
        if not _SAFE_ID.match(rid):
            rid = new_id(hex_digits=32)
        told = Exchange(scope["method"], scope["path"], self.log_content)
        token = request_id.set(rid)
        told_token = exchange.set(told)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                told.status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            elif 400 <= told.status < 500 and not told.reason:
                told.reason = _reason(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            _measure(scope, told.status, seconds)
            told.duration_ms = seconds * 1000
            log.info("%s", told, extra={"exchange": told})
            if told.content and told.model and content_log.isEnabledFor(logging.DEBUG):
                said, answered = _quoted(told.question), _quoted(told.answer)
                content_log.debug("user: %s answer: %s", said, answered)
            exchange.reset(told_token)
            request_id.reset(token)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH"})


def _measure(scope: Scope, status: int, seconds: float) -> None:
    """Record the request in the metrics, by its route's template (`other` when none matched)."""
    services = scope.get("state", {}).get("services")
    metrics = services.metrics if services is not None else None
    if metrics is None:
        return
    route = scope.get("route")
    template = route.path if route is not None else "other"
    if scope["path"].startswith("/v1/") and not template.startswith(("/v1/", "other")):
        template = "/v1" + template  # a router included under /v1 too keeps its own paths
    method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
    metrics.http_request(method, template, status, seconds)


def _quoted(text: str) -> str:
    """`text` on one line, in JSON's quotes."""
    return orjson.dumps(text).decode()


def _reason(body: bytes) -> str:
    """The message of a refusal's error body (OpenAI's or Anthropic's shape), for the access
    log: the gateway's own words or an upstream's error message (a validation error's values
    left out), which name fields but never echo a key or a message's text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:300] if message else ""


class BodySizeLimitMiddleware:
    """Answers 413 to a request whose body passes `limit` bytes: before reading it when its
    Content-Length says so, else (a chunked body) as soon as the bytes received pass the limit.
    A body with a Content-Length is not counted: the server delivers no more than it declares."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if int(value) > self.limit:
                    await send_error(scope, send, self._too_large())
                else:
                    await self.app(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            """The next message; the body's bytes are counted, and past the limit the app's
            read of the body fails with the 413 (turned into the response by its handler)."""
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._too_large()
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(
            f"the request body is larger than {self.limit} bytes (MAX_REQUEST_BYTES)"
        )
