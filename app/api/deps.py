"""Route dependencies: the lifespan's resources, typed. They are `async` so that FastAPI calls
them inline instead of handing each one to a worker thread."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.ops.health import HealthChecker
from app.providers.router import Router


async def _router(request: Request) -> Router:
    router: Router = request.state.router
    return router


async def _health(request: Request) -> HealthChecker:
    health: HealthChecker = request.state.health
    return health


RouterDep = Annotated[Router, Depends(_router)]
HealthDep = Annotated[HealthChecker, Depends(_health)]
