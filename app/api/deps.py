"""Route dependencies: the lifespan's resources, typed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.chat.service import ChatService
from app.ops.health import HealthChecker
from app.providers.router import Router


def _chat(request: Request) -> ChatService:
    service: ChatService = request.state.chat
    return service


def _router(request: Request) -> Router:
    router: Router = request.state.router
    return router


def _health(request: Request) -> HealthChecker:
    health: HealthChecker = request.state.health
    return health


ChatDep = Annotated[ChatService, Depends(_chat)]
RouterDep = Annotated[Router, Depends(_router)]
HealthDep = Annotated[HealthChecker, Depends(_health)]
