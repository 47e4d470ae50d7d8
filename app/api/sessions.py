"""The stateful chat API: /chat, /v1/chat/stream, sessions, per-session metrics, vitals.

Who a request acts for: a key bound to an owner acts as that owner, whatever the request says; a
key without one (a service key such as OpenWebUI's connection key, or no keys at all) acts for the
user the request names: the body's user id, the `user_id` query parameter, or (with
TRUST_USER_HEADERS=true) OpenWebUI's `X-OpenWebUI-User-Id` header. A session of another user is a
404, exactly like one that does not exist. A service key that names no user may read a session
by its id, which is random and unguessable.

The router brings its own lifespan (merged into the app's by FastAPI): the background folds are
cancelled there at shutdown, before Redis is closed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.api.responses import JSON, EventStream
from app.api.schemas import parse_json, validate
from app.chat.stateful import Ask, Event, StatefulChat
from app.chat.summary import Background, Folder
from app.config import Settings
from app.errors import GatewayError, InvalidRequest, NotFound
from app.memory.sessions import Session, SessionStore, aggregate
from app.security.identity import ANONYMOUS, Identity
from app.security.ratelimit import charge

_SESSION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
USER_HEADER = "x-openwebui-user-id"


class _Runtime:
    """What outlives a request: the background folds and the start time."""

    def __init__(self) -> None:
        self.background = Background()
        self.started = time.monotonic()
        self.started_at = int(time.time())


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
    runtime = _Runtime()
    try:
        yield {"stateful_runtime": runtime}
    finally:
        await runtime.background.aclose()


router = APIRouter(lifespan=_lifespan)


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: str | None = Field(None, min_length=1, max_length=256)
    session_id: str | None = Field(None, pattern=_SESSION_ID)
    message: str = Field(min_length=1)
    stream: bool | None = None
    model: str | None = None


class StreamBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: str | None = Field(None, min_length=1, max_length=256)
    sessionId: str | None = Field(None, pattern=_SESSION_ID)
    prompt: str = Field(min_length=1)
    model: str | None = None


def _documented(body: type[BaseModel]) -> dict[str, Any]:
    """The route's JSON body for the OpenAPI schema (the route reads the body itself, so that
    bad input is a 400 naming the field)."""
    content = {"application/json": {"schema": body.model_json_schema()}}
    return {"requestBody": {"required": True, "content": content}}


def _identity(request: Request) -> Identity:
    identity = getattr(request.state, "identity", None)
    return identity if isinstance(identity, Identity) else ANONYMOUS


def acting_user(request: Request, named: str | None) -> str | None:
    """The user this request acts for (see the module's docstring): `named` is the user the
    body or the query names. None when a service key names no user."""
    owner = _identity(request).owner
    if owner:
        return owner
    settings: Settings = request.state.settings
    header = request.headers.get(USER_HEADER) if settings.trust_user_headers else None
    return named or header or None


UserQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        description="The user a service key acts for; a key bound to an owner acts as its owner",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _stateful(request: Request) -> StatefulChat:
    runtime: _Runtime = request.state.stateful_runtime
    settings: Settings = request.state.settings
    store = _store(request)
    return StatefulChat(
        chat=request.state.chat,
        router=request.state.router,
        store=store,
        folder=Folder(request.state.router, store, settings, runtime.background),
        persona=request.state.chat.persona,
        settings=settings,
    )


def _store(request: Request) -> SessionStore:
    settings: Settings = request.state.settings
    return SessionStore(
        request.state.redis,
        ttl=settings.session_ttl,
        max_messages=settings.max_session_messages,
    )


def _required_user(request: Request, named: str | None, field: str) -> str:
    """The user this request acts for; 400 naming `field` if it names none."""
    user = acting_user(request, named)
    if not user:
        raise InvalidRequest(
            f"'{field}' is required: the request must name the user it acts for (only a key "
            "bound to an owner implies one)",
            param=field,
        )
    return user


def _frame(item: Event | str) -> bytes:
    if isinstance(item, str):
        return b": " + item.encode() + b"\n\n"
    return b"event: " + item.name.encode() + b"\ndata: " + orjson.dumps(item.data) + b"\n\n"


async def _sse(request: Request, ask: Ask) -> Response:
    turn = await _stateful(request).open(ask)

    async def frames() -> AsyncIterator[bytes]:
        async for item in turn.events():
            yield _frame(item)
        await charge(request, turn.usage["total_tokens"])

    return EventStream(frames(), headers=_SSE_HEADERS)


@router.post("/chat", openapi_extra=_documented(ChatBody))
async def chat(request: Request, user_id: UserQuery = None) -> Response:
    """The seed's chat: `{user_id, session_id?, message, stream?, model?}`. The answer with the
    session id, the tools used, their sources, timings and usage; `stream: true` answers with
    the same server-sent events as /v1/chat/stream instead."""
    body = validate(ChatBody, parse_json(await request.body()))
    user = _required_user(request, body.user_id or user_id, "user_id")
    ask = Ask(user, body.session_id, body.message, body.model)
    if body.stream:
        return await _sse(request, ask)
    turn = await _stateful(request).open(ask)
    result = await turn.result()
    await charge(request, turn.usage["total_tokens"])
    return JSON(result)


@router.post("/v1/chat/stream", openapi_extra=_documented(StreamBody))
async def chat_stream(request: Request, user_id: UserQuery = None) -> Response:
    """Server-sent events `agent`, `tool_call_started`, `tool_call_completed`, `token`
    (`{"text"}`), then `done` (`{fullText, suggestions, timings: {ttft_ms, total_ms}, ...}`)
    or `error`. Body: `{sessionId?, userId, prompt, model?}`."""
    body = validate(StreamBody, parse_json(await request.body()))
    user = _required_user(request, body.userId or user_id, "userId")
    ask = Ask(user, body.sessionId, body.prompt, body.model)
    return await _sse(request, ask)


async def _visible(request: Request, session_id: str, named: str | None) -> Session:
    """The session if this request may see it; else 404, as if it did not exist."""
    session = await _store(request).get(session_id)
    user = acting_user(request, named)
    if session is None or (user is not None and session.user_id != user):
        raise NotFound(f"no session '{session_id}'", param="session_id")
    return session


@router.get("/v1/sessions")
async def list_sessions(
    request: Request, user_id: UserQuery = None, limit: Limit = 100
) -> Response:
    """The sessions of the user this request acts for, the most recently updated first."""
    user = acting_user(request, user_id)
    if not user:
        raise InvalidRequest("'user_id' is required to list sessions", param="user_id")
    sessions = await _store(request).for_user(user, limit)
    return JSON({"object": "list", "data": [s.public() for s in sessions]})


@router.get("/v1/sessions/{session_id}")
async def get_session(request: Request, session_id: str, user_id: UserQuery = None) -> Response:
    return JSON((await _visible(request, session_id, user_id)).public())


@router.get("/v1/sessions/{session_id}/messages")
async def session_messages(
    request: Request, session_id: str, user_id: UserQuery = None, limit: Limit = 100
) -> Response:
    """The last `limit` messages kept verbatim (older ones live on in the summary)."""
    await _visible(request, session_id, user_id)
    messages = await _store(request).messages(session_id, limit)
    return JSON({"object": "list", "session_id": session_id, "data": messages})


@router.delete("/v1/sessions/{session_id}")
async def delete_session(request: Request, session_id: str, user_id: UserQuery = None) -> Response:
    session = await _visible(request, session_id, user_id)
    await _store(request).delete(session)
    return JSON({"id": session_id, "object": "session", "deleted": True})


@router.get("/v1/metrics/{session_id}")
async def session_metrics(request: Request, session_id: str, user_id: UserQuery = None) -> Response:
    await _visible(request, session_id, user_id)
    turns = await _store(request).metrics(session_id)
    return JSON({"session_id": session_id, **aggregate(turns)})


@router.get("/v1/vitals")
async def vitals(request: Request) -> Response:
    """Uptime of this process and totals over every session in Redis (null while Redis is
    unavailable)."""
    runtime: _Runtime = request.state.stateful_runtime
    body: dict[str, Any] = {
        "uptime_s": round(time.monotonic() - runtime.started, 1),
        "started_at": runtime.started_at,
    }
    try:
        totals = await _store(request).totals()
    except GatewayError as exc:
        return JSON({**body, "totals": None, "averages": None, "state_error": exc.message})
    turns = totals.get("turns", 0)
    averages = {
        name: round(totals.get(name, 0) / turns, 1) if turns else None
        for name in ("ttft_ms", "total_ms")
    }
    counted = {k: v for k, v in totals.items() if k not in ("ttft_ms", "total_ms")}
    return JSON({**body, "totals": counted, "averages": averages})
