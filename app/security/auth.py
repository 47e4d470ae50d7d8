"""Bearer-key authentication for every route but health."""

from __future__ import annotations

import hmac

import orjson
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.errors import AuthenticationFailed

_OPEN_PATHS = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        "/v1/health",
        "/v1/health/live",
        "/v1/health/ready",
    }
)


class BearerAuthMiddleware:
    """Answers 401 with an OpenAI error body unless `Authorization: Bearer <key>` carries one of
    `keys`. Every key is compared in constant time, so timing tells nothing about them."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app = app
        self._keys = [key.encode() for key in keys]

    def _valid(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        token = token.strip()
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(token, key)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        if self._valid(header):
            await self.app(scope, receive, send)
            return
        error = AuthenticationFailed(
            "Invalid API key." if header else "Missing API key: send 'Authorization: Bearer <key>'."
        )
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": orjson.dumps(error.body())})


def install_auth(app: Starlette, settings: Settings) -> None:
    """Bearer keys on every route but health, when keys are configured."""
    if settings.api_keys:
        app.add_middleware(BearerAuthMiddleware, keys=settings.api_keys)
