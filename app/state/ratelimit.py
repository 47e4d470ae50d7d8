"""Requests and tokens per minute per API key, shared by every gateway process on one Redis.

Both limits are GCRA (the generic cell rate algorithm): one Redis key per API key and limit
holds a "theoretical arrival time" (TAT), in microseconds of Redis's own clock, so processes on
different hosts agree. `TAT - now` is the part of the minute already used:

- requests: each admitted request adds 60 s / RPM; a request is admitted while the result stays
  within one minute. A key may thus send RPM requests at once, then one every 60 s / RPM.
- tokens: the tokens of an answer are only known afterwards, so a request is admitted while
  `TAT - now` is under one minute (the budget is not used up), and `charge()` adds
  tokens x 60 s / TPM once the answer is done. A big answer is paid off at TPM tokens a minute.

One Lua script checks both limits and counts the request atomically (a request refused for
tokens does not use a request); EVALSHA sends only the script's hash. Keys expire when their
TAT has passed. `/v1/models` and health are not counted; keys without limits never reach Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from app.errors import GatewayError, ProviderUnavailable, RateLimited

log = logging.getLogger(__name__)

WINDOW_US = 60_000_000
WARN_EVERY = 30.0

_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = 60000000
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat
if rpm > 0 then
  tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
  tat = tat + math.max(1, math.floor(window / rpm))
  local wait = tat - window - now
  if wait > 0 then return {1, math.ceil(wait / 1000)} end
end
if tpm > 0 then
  local wait = tonumber(redis.call('GET', KEYS[2]) or 0) - window - now
  if wait >= 0 then return {2, math.floor(wait / 1000) + 1} end
end
if rpm > 0 then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
end
return {0, 0}
"""
"""KEYS: the request TAT, the token TAT. ARGV: RPM, TPM (0: unlimited). Returns {0, 0} when
admitted, else {1 (requests) or 2 (tokens), milliseconds until a request would be admitted}."""

_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
tat = tat + math.ceil(tonumber(ARGV[1]) * 60000000 / tonumber(ARGV[2]))
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
"""
"""KEYS: the token TAT. ARGV: tokens, TPM."""


class _Script:
    """A Lua script run by EVALSHA; loaded again when Redis does not know it (after a restart
    or SCRIPT FLUSH)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, redis: Redis, keys: tuple[str, ...], *args: int) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)


class Limited(Protocol):
    """Whose limits are checked: an API key's id (None: no key) and its limits (None: none)."""

    @property
    def key_id(self) -> str | None: ...
    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...


def redis_keys(key_id: str) -> tuple[str, str]:
    """The request and token TAT keys of an API key; the hash tag keeps both on one cluster
    slot, as the script needs."""
    return f"ratelimit:{{{key_id}}}:rpm", f"ratelimit:{{{key_id}}}:tpm"


def _unavailable() -> ProviderUnavailable:
    return ProviderUnavailable("redis", "rate limiting is unavailable: Redis is unreachable")


class RateLimiter:
    """The limits' checks and charges against a Redis client; what to do when Redis fails is
    `fail_open` (admit and warn) or not (503)."""

    def __init__(self, redis: Redis, fail_open: bool) -> None:
        self.fail_open = fail_open
        self._redis = redis
        self._check = _Script(_CHECK)
        self._charge = _Script(_CHARGE)
        self._warned_at = -math.inf
        self.refusals = {"rpm": 0, "tpm": 0, "unavailable": 0}
        """Requests refused in this process, by what refused them."""

    def _warn(self, message: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("%s: %s: %s", message, type(exc).__name__, exc)

    async def check(self, identity: Limited) -> GatewayError | None:
        """None when the request is admitted (and counted), else the error to answer with."""
        if identity.key_id is None or (identity.rpm is None and identity.tpm is None):
            return None
        try:
            limit, wait_ms = await self._check(
                self._redis, redis_keys(identity.key_id), identity.rpm or 0, identity.tpm or 0
            )
        except (RedisError, OSError) as exc:
            if self.fail_open:
                self._warn("rate limiting is off while Redis is unreachable", exc)
                return None
            self._warn("refusing requests: rate limiting is unavailable", exc)
            self.refusals["unavailable"] += 1
            return _unavailable()
        if limit == 0:
            return None
        if limit == 1:
            self.refusals["rpm"] += 1
            what = f"{identity.rpm} requests per minute"
        else:
            self.refusals["tpm"] += 1
            what = f"{identity.tpm} tokens per minute"
        retry_after = max(1, math.ceil(int(wait_ms) / 1000))
        return RateLimited(
            f"Rate limit reached for this API key: {what}. Try again in {retry_after} s.",
            retry_after=retry_after,
        )

    async def charge(self, identity: Limited, tokens: int) -> None:
        """Count an answer's tokens against the key's TPM. Never raises: the answer is given."""
        if identity.key_id is None or identity.tpm is None or tokens <= 0:
            return
        try:
            await self._charge(self._redis, redis_keys(identity.key_id)[1:], tokens, identity.tpm)
        except (RedisError, OSError) as exc:
            self._warn("tokens not counted: Redis is unreachable", exc)
