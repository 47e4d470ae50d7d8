"""Route dependencies: the lifespan's resources, typed. They are `async` so that FastAPI calls
them inline instead of handing each one to a worker thread."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request

from app.ops.health import HealthChecker
from app.providers.router import Router
from app.tools.registry import ToolRegistry


async def _router(request: Request) -> Router:
    router: Router = request.state.router
    return router


async def _health(request: Request) -> HealthChecker:
    health: HealthChecker = request.state.health
    return health


async def _redis(request: Request) -> aioredis.Redis:
    redis: aioredis.Redis = request.state.redis
    return redis


async def _tools(request: Request) -> ToolRegistry:
    tools: ToolRegistry = request.state.tools
    return tools


RouterDep = Annotated[Router, Depends(_router)]
HealthDep = Annotated[HealthChecker, Depends(_health)]
RedisDep = Annotated[aioredis.Redis, Depends(_redis)]
ToolsDep = Annotated[ToolRegistry, Depends(_tools)]
