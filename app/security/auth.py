"""API-key authentication (`Authorization: Bearer <key>`, or Anthropic's `x-api-key: <key>`) for
every route but health and the API's documentation, and the identity of each request."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import SecuritySettings
from app.errors import AuthenticationFailed
from app.security.identity import ANONYMOUS
from app.security.keys import KeyStore
from app.security.ratelimit import RateLimitMiddleware, send_error

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        "/v1/health",
        "/v1/health/live",
        "/v1/health/ready",
        "/metrics",  # scraped by Prometheus, which holds no key
    }
)
_CHALLENGE = [(b"www-authenticate", b"Bearer")]


class BearerAuthMiddleware:
    """Answers 401 with an error body unless `Authorization: Bearer <key>` (or, without a bearer
    token, `x-api-key: <key>`) carries a key of `store`; puts the key's `Identity` in
    `request.state.identity` (ANONYMOUS on the `public` paths and those under
    `public_prefixes`)."""

    def __init__(
        self,
        app: ASGIApp,
        store: KeyStore,
        public: frozenset[str],
        public_prefixes: tuple[str, ...],
    ) -> None:
        self.app = app
        self._store = store
        self._open = public
        self._open_prefixes = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        path = scope["path"]
        if path in self._open or path.startswith(self._open_prefixes):
            state["identity"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        header = api_key = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
            elif name == b"x-api-key":
                api_key = value.strip()
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        if not (scheme.lower() == b"bearer" and token):
            token = api_key
        identity = self._store.lookup(token) if token else None
        if identity is not None:
            state["identity"] = identity
            await self.app(scope, receive, send)
            return
        error = AuthenticationFailed(_refusal(header, bool(token)))
        await send_error(scope, send, error, _CHALLENGE)


def _refusal(header: bytes, key_given: bool) -> str:
    if key_given:
        return "Invalid API key."
    if header:
        return "Invalid Authorization header: send 'Authorization: Bearer <key>'."
    return "Missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>')."


class AnonymousMiddleware:
    """Without keys, every request is ANONYMOUS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["identity"] = ANONYMOUS
        await self.app(scope, receive, send)


def install_auth(
    app: Starlette,
    settings: SecuritySettings,
    keys_path: Path | None,
    public: frozenset[str] = frozenset(),
    public_prefixes: tuple[str, ...] = (),
) -> None:
    """Bearer keys on every route but health and `public` (paths, and paths under
    `public_prefixes`) when API_KEYS or a keys file (`keys_path`, see `keys.keys_file`) is
    set, then the keys' rate limits. A bad keys file raises `ConfigError`."""
    if (settings.rate_limit_rpm or settings.rate_limit_tpm) and not settings.api_keys:
        log.warning("RATE_LIMIT_RPM and RATE_LIMIT_TPM limit API_KEYS, which is not set")
    if not settings.api_keys and keys_path is None:
        log.warning("API_KEYS is not set: the gateway is open to anyone who can reach it")
        app.add_middleware(AnonymousMiddleware)
        return
    if keys_path is not None and settings.api_keys_file is None:
        log.info("API keys: %s (API_KEYS_FILE is unset; this is DATA_DIR's keys file)", keys_path)
    store = KeyStore.from_settings(settings, keys_path)
    if not store:
        log.warning("keys file %s holds no key: every request is refused", keys_path)
    if store.limited:
        app.add_middleware(RateLimitMiddleware)
    app.add_middleware(
        BearerAuthMiddleware,
        store=store,
        public=HEALTH_PATHS | public,
        public_prefixes=public_prefixes,
    )
