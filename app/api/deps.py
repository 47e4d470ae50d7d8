"""What handlers are given: the lifespan's services and the request's identity, typed, through
`Annotated` dependencies. They are `async` so that FastAPI calls them inline instead of handing
each one to a worker thread. The Starlette routes of the hot path call `services()` directly."""

from __future__ import annotations

from typing import Annotated, TypedDict

import redis.asyncio as aioredis
from fastapi import Depends
from starlette.requests import HTTPConnection

from app.chat.stateful import Conversations
from app.config import SecuritySettings
from app.ops.health import HealthChecker
from app.providers.router import Router
from app.security.identity import ANONYMOUS, Identity
from app.services import Services
from app.state.responses import ResponseStore
from app.state.sessions import SessionStore
from app.tools.registry import ToolRegistry


class State(TypedDict):
    """The lifespan's state, copied into every request's `state`."""

    services: Services


def services(request: HTTPConnection) -> Services:
    found: Services = request.state.services
    return found


def identity(request: HTTPConnection) -> Identity:
    """Who the request's key belongs to (set by the authentication middleware)."""
    found = getattr(request.state, "identity", None)
    return found if isinstance(found, Identity) else ANONYMOUS


async def _services(request: HTTPConnection) -> Services:
    return services(request)


async def _identity(request: HTTPConnection) -> Identity:
    return identity(request)


ServicesDep = Annotated[Services, Depends(_services)]
IdentityDep = Annotated[Identity, Depends(_identity)]


async def _router(s: ServicesDep) -> Router:
    return s.router


async def _health(s: ServicesDep) -> HealthChecker:
    return s.health


async def _redis(s: ServicesDep) -> aioredis.Redis:
    return s.redis


async def _tools(s: ServicesDep) -> ToolRegistry:
    return s.registry


async def _sessions(s: ServicesDep) -> SessionStore:
    return s.sessions


async def _responses(s: ServicesDep) -> ResponseStore:
    return s.responses


async def _conversations(s: ServicesDep) -> Conversations:
    return s.conversations


async def _security(s: ServicesDep) -> SecuritySettings:
    return s.settings.security


RouterDep = Annotated[Router, Depends(_router)]
HealthDep = Annotated[HealthChecker, Depends(_health)]
RedisDep = Annotated[aioredis.Redis, Depends(_redis)]
ToolsDep = Annotated[ToolRegistry, Depends(_tools)]
SessionsDep = Annotated[SessionStore, Depends(_sessions)]
ResponsesDep = Annotated[ResponseStore, Depends(_responses)]
ConversationsDep = Annotated[Conversations, Depends(_conversations)]
SecurityDep = Annotated[SecuritySettings, Depends(_security)]
