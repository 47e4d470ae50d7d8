"""The rate limits at the HTTP edge: a middleware that refuses requests over their key's limits
(the limits themselves are kept in Redis by `app.state.ratelimit`), and the charge of an
answer's tokens once it is done."""

from __future__ import annotations

from typing import Protocol

import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import GatewayError
from app.security.identity import Identity
from app.state.ratelimit import RateLimiter


class _Limited(Protocol):
    """What the application state's services give this module."""

    @property
    def limiter(self) -> RateLimiter: ...


async def charge(request: HTTPConnection, tokens: int) -> None:
    """Count `tokens` (prompt + completion) against the TPM of the key `request` came with; a
    no-op for keys without a TPM limit. Call it once an answer is done."""
    state = request.scope.get("state", {})
    identity = state.get("identity")
    if identity is None or identity.tpm is None:
        return
    services: _Limited = state["services"]
    await services.limiter.charge(identity, tokens)


async def send_error(
    scope: Scope, send: Send, error: GatewayError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer the request of `scope` with `error`'s status and body (in the shape of the API
    the request was for), from a middleware."""
    head = [(b"content-type", b"application/json"), *(headers or [])]
    head.extend((name.lower().encode(), value.encode()) for name, value in error.headers().items())
    await send({"type": "http.response.start", "status": error.status, "headers": head})
    body = orjson.dumps(error.body_at(scope["path"]))
    await send({"type": "http.response.body", "body": body})


def counted(path: str) -> bool:
    """Whether a request to `path` counts against the limits: the model lists do not (nor does
    health, which has no key)."""
    for prefix in ("/v1/models", "/models"):
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return False
    return True


class RateLimitMiddleware:
    """Refuses a request over its key's limits with 429 and Retry-After (503 when Redis fails
    and `RATE_LIMIT_FAIL_OPEN` is false). Runs after authentication, which sets the identity."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope.setdefault("state", {})
            identity: Identity | None = state.get("identity")
            if (
                identity is not None
                and (identity.rpm is not None or identity.tpm is not None)
                and counted(scope["path"])
            ):
                services: _Limited = state["services"]
                error = await services.limiter.check(identity)
                if error is not None:
                    await send_error(scope, send, error)
                    return
        await self.app(scope, receive, send)
