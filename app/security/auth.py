"""API-key authentication (`Authorization: Bearer <key>`, or Anthropic's `x-api-key: <key>`) for
every route but health and the API's documentation, and the identity of each request. Which
routes need an admin key is the routes' own business (`api/deps.require_admin`)."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import SecuritySettings
from app.errors import AuthenticationFailed
from app.security.identity import ANONYMOUS, OPEN
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


class Access:
    """Who may call what: the keys, and the paths open to anyone (health, and the `public`
    paths and those under `public_prefixes`)."""

    def __init__(
        self,
        keys: KeyStore,
        public: frozenset[str] = frozenset(),
        public_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.keys = keys
        self.public = HEALTH_PATHS | public
        self.public_prefixes = public_prefixes

    def is_public(self, route: str) -> bool:
        """Whether the route at `route` (a template, or a mount's path) is open without a key."""
        prefixes = self.public_prefixes
        return route in self.public or route.startswith(prefixes) or route + "/" in prefixes


class BearerAuthMiddleware:
    """Answers 401 with an error body unless `Authorization: Bearer <key>` (or, without a bearer
    token, `x-api-key: <key>`) carries an accepted key; puts the key's `Identity` in
    `request.state.identity` (ANONYMOUS on the public paths; OPEN on every path while the
    gateway has no keys at all)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self._store = access.keys
        self._open = access.public
        self._open_prefixes = access.public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if self._store.open:
            state["identity"] = OPEN
            await self.app(scope, receive, send)
            return
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


def install_auth(app: Starlette, access: Access, settings: SecuritySettings) -> None:
    """Keys on every route but the public ones (none while the gateway has no keys), then the
    keys' rate limits (keys with limits may be created while the gateway runs)."""
    store = access.keys
    if (settings.rate_limit_rpm or settings.rate_limit_tpm) and not (
        settings.api_keys or settings.admin_api_keys
    ):
        log.warning(
            "RATE_LIMIT_RPM and RATE_LIMIT_TPM limit API_KEYS and ADMIN_API_KEYS, which are not set"
        )
    if store.open:
        log.warning(
            "API_KEYS is not set and there is no keys file: the gateway is open to anyone who "
            "can reach it, admin routes included"
        )
    elif store.path.exists() and settings.api_keys_file is None:
        log.info("API keys: %s (API_KEYS_FILE is unset; this is DATA_DIR's keys file)", store.path)
    if not store and not store.open:
        log.warning("keys file %s holds no key: every request is refused", store.path)
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(BearerAuthMiddleware, access=access)
