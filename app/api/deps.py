"""What handlers are given: the lifespan's services and the request's identity, typed, through
`Annotated` dependencies. They are `async` so that FastAPI calls them inline instead of handing
each one to a worker thread. The Starlette routes of the hot path call `services()` directly."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import redis.asyncio as aioredis
from fastapi import Depends, Query
from starlette.requests import HTTPConnection

from app.chat.grounding import Asker
from app.chat.stateful import Conversations
from app.config import SecuritySettings
from app.errors import Forbidden, InvalidRequest
from app.knowledge.service import Knowledge
from app.ops.health import HealthChecker
from app.pipelines.catalogue import Pipelines
from app.providers.router import Router
from app.security.auth import Access
from app.security.identity import ANONYMOUS, USER_HEADER, Identity, acting_user, knowledge_owner
from app.services import Services
from app.state.feedback import FeedbackStore
from app.state.responses import ResponseStore
from app.state.sessions import SessionStore
from app.tools.registry import ToolRegistry


class State(TypedDict):
    """The lifespan's state, copied into every request's `state`."""

    services: Services
    access: Access


def services(request: HTTPConnection) -> Services:
    found: Services = request.state.services
    return found


def identity(request: HTTPConnection) -> Identity:
    """Who the request's key belongs to (set by the authentication middleware)."""
    found = getattr(request.state, "identity", None)
    return found if isinstance(found, Identity) else ANONYMOUS


def answer_owner(request: HTTPConnection, body: dict[str, Any]) -> str:
    """Whose the answer to a chat body is, under the identity rules (`security/identity.py`):
    a key's owner, else the user the body names in OpenAI's `user` field (a string, or
    OpenWebUI's object with its `id`) or OpenWebUI's trusted header, else the key."""
    who = identity(request)
    named = body.get("user")
    if isinstance(named, dict):
        named = named.get("id")
    trust = services(request).settings.security.trust_user_headers
    header = request.headers.get(USER_HEADER)
    user = acting_user(who, named if isinstance(named, str) and named else None, header, trust)
    return knowledge_owner(who, user)


def asker(request: HTTPConnection, body: dict[str, Any]) -> Asker:
    """The user a chat body's turn is grounded for (`answer_owner`), and whether the body
    (`rag`, `memory`) and the key allow grounding."""
    return Asker(
        answer_owner(request, body),
        rag=identity(request).rag and body.get("rag") is not False,
        memory=body.get("memory") is not False,
    )


async def _services(request: HTTPConnection) -> Services:
    return services(request)


async def _identity(request: HTTPConnection) -> Identity:
    return identity(request)


async def _access(request: HTTPConnection) -> Access:
    found: Access = request.state.access
    return found


ServicesDep = Annotated[Services, Depends(_services)]
IdentityDep = Annotated[Identity, Depends(_identity)]
AccessDep = Annotated[Access, Depends(_access)]
"""The keys and the routes open without one."""


async def require_admin(identity: IdentityDep) -> Identity:
    """The request's identity if its key is an admin's (or the gateway has no keys), else 403;
    a route of admin keys only depends on it (`dependencies=[Depends(require_admin)]`, or a
    parameter typed `AdminDep`)."""
    if not identity.admin:
        raise Forbidden(
            "this route needs an admin key (ADMIN_API_KEYS, or a key created with "
            "`python -m app keys create --admin`)"
        )
    return identity


AdminDep = Annotated[Identity, Depends(require_admin)]


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


async def _feedback(s: ServicesDep) -> FeedbackStore:
    return s.feedback


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
FeedbackDep = Annotated[FeedbackStore, Depends(_feedback)]
ResponsesDep = Annotated[ResponseStore, Depends(_responses)]
ConversationsDep = Annotated[Conversations, Depends(_conversations)]
SecurityDep = Annotated[SecuritySettings, Depends(_security)]


async def _knowledge(s: ServicesDep) -> Knowledge:
    return s.knowledge


KnowledgeDep = Annotated[Knowledge, Depends(_knowledge)]


async def _pipelines(s: ServicesDep) -> Pipelines:
    return s.pipelines


PipelinesDep = Annotated[Pipelines, Depends(_pipelines)]

UserQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        description="The user a service key acts for; a key bound to an owner acts as its owner",
    ),
]


class _Actor:
    """Who a request acts for: the user it names (in the body or the query) resolved under the
    identity rules (`security/identity.py`)."""

    def __init__(
        self,
        request: HTTPConnection,
        identity: Identity,
        security: SecuritySettings,
        query: str | None,
    ) -> None:
        self._request = request
        self.identity = identity
        self._security = security
        self._query = query

    def user(self, named: str | None = None) -> str | None:
        """The user named in the body (`named`) or the query; None when a service key names
        no user."""
        header = self._request.headers.get(USER_HEADER)
        return acting_user(
            self.identity, named or self._query, header, self._security.trust_user_headers
        )

    def required(self, named: str | None, field: str) -> str:
        """The user; 400 naming `field` if the request names none."""
        user = self.user(named)
        if not user:
            raise InvalidRequest(
                f"'{field}' is required: the request must name the user it acts for (only a "
                "key bound to an owner implies one)",
                param=field,
            )
        return user

    def owner(self, named: str | None = None) -> str:
        """Whose documents and memories the request uses."""
        return knowledge_owner(self.identity, self.user(named))


async def _actor(
    request: HTTPConnection, identity: IdentityDep, security: SecurityDep, user_id: UserQuery = None
) -> _Actor:
    return _Actor(request, identity, security, user_id)


Actor = Annotated[_Actor, Depends(_actor)]
