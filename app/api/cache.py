"""The cache endpoints: /cache/health, /cache/stats and /cache/invalidate/* (admin keys only)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Literal, TypeVar

from fastapi import APIRouter, Depends
from redis.exceptions import RedisError
from starlette.responses import Response

from app.api.deps import RedisDep, require_admin
from app.api.openapi import errors
from app.api.responses import JSON
from app.errors import GatewayError
from app.state import cache
from app.state.redis import probe as probe_redis

router = APIRouter(tags=["cache"])
_T = TypeVar("_T")


class CacheUnavailable(GatewayError):
    status = 503
    code = "cache_unavailable"


@router.get(
    "/cache/health", responses={503: {"description": "Redis does not answer: the same probe"}}
)
async def cache_health(redis: RedisDep) -> Response:
    """Whether Redis answers, and how fast: 200 when it does, 503 when not."""
    probe = await probe_redis(redis)
    return JSON(probe, status_code=200 if probe["status"] == "up" else 503)


@router.get("/cache/stats")
async def cache_stats(redis: RedisDep) -> Response:
    """Hits, misses, hit rate, keys and memory of the `llm`, `tools` and `intent` caches."""
    return JSON(await _reach(cache.stats(redis)))


@router.delete(
    "/cache/invalidate/{name}",
    responses=errors(400, 403),
    dependencies=[Depends(require_admin)],
)
async def invalidate(name: Literal["llm", "tools", "intent"], redis: RedisDep) -> Response:
    """Remove every entry of one cache: `{"invalidated": <keys removed>}` (admin keys only)."""
    return JSON({"invalidated": await _reach(cache.invalidate(redis, name))})


async def _reach(pending: Awaitable[_T]) -> _T:
    try:
        return await pending
    except (RedisError, OSError) as exc:
        raise CacheUnavailable(f"Redis is unreachable: {exc}") from None
