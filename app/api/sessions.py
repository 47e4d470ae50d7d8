"""The stateful chat API: /chat, /v1/chat/stream, sessions, per-session metrics, vitals.

Who a request acts for: a key bound to an owner acts as that owner, whatever the request says; a
key without one (a service key such as OpenWebUI's connection key, or no keys at all) acts for the
user the request names: the body's user id, the `user_id` query parameter, or (with
TRUST_USER_HEADERS=true) OpenWebUI's `X-OpenWebUI-User-Id` header. A session of another user is a
404, exactly like one that does not exist. A service key that names no user may read a session
by its id, which is random and unguessable.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.api.deps import Actor, ConversationsDep, ServicesDep, SessionsDep
from app.api.openapi import errors, request_body
from app.api.responses import JSON, EventStream
from app.api.schemas import GatewayFlags, parse_json, validate
from app.api.wire import chat_json, chat_stream, sse
from app.chat.stateful import Ask
from app.chat.turn import Turn
from app.errors import GatewayError, InvalidRequest, NotFound
from app.ops.metrics import Metrics
from app.security.ratelimit import charge
from app.state.sessions import Session, aggregate

SESSION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"

router = APIRouter()


class ChatBody(GatewayFlags):
    model_config = ConfigDict(extra="ignore")

    user_id: str | None = Field(None, min_length=1, max_length=256)
    session_id: str | None = Field(None, pattern=SESSION_ID)
    message: str = Field(min_length=1)
    stream: bool | None = None
    model: str | None = None


class StreamBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: str | None = Field(None, min_length=1, max_length=256)
    sessionId: str | None = Field(None, pattern=SESSION_ID)
    prompt: str = Field(min_length=1)
    model: str | None = None


Limit = Annotated[int, Query(ge=1, le=1000)]


async def _visible(session_id: str, store: SessionsDep, actor: Actor) -> Session:
    """The session if this request may see it; else 404, as if it did not exist."""
    session = await store.get(session_id)
    user = actor.user()
    if session is None or (user is not None and session.user_id != user):
        raise NotFound(f"no session '{session_id}'", param="session_id")
    return session


Visible = Annotated[Session, Depends(_visible)]


def _charged(request: Request, turn: Turn) -> AsyncIterator[bytes]:
    async def frames() -> AsyncIterator[bytes]:
        async for frame in chat_stream.stream(turn):
            yield frame
        if turn.usage is not None:
            await charge(request, turn.usage.total_tokens)

    return frames()


def stream_response(request: Request, turn: Turn) -> EventStream:
    """`turn` as /v1/chat/stream's events, its tokens charged when they end."""
    return EventStream(_charged(request, turn), headers=sse.HEADERS)


@router.post("/chat", responses=errors(400, 404, 502, 504), openapi_extra=request_body(ChatBody))
async def chat(request: Request, conversations: ConversationsDep, actor: Actor) -> Response:
    """The seed's chat: `{user_id, session_id?, message, stream?, model?}`. The answer with the
    session id, the tools used, their sources, timings and usage; `stream: true` answers with
    the same server-sent events as /v1/chat/stream instead."""
    body = validate(ChatBody, parse_json(await request.body()))
    user = actor.required(body.user_id, "user_id")
    turn = await conversations.open(
        Ask(
            user,
            body.session_id,
            body.message,
            body.model,
            streamed=bool(body.stream),
            rag=actor.identity.rag and body.rag is not False,
            memory=body.memory is not False,
        )
    )
    if body.stream:
        return stream_response(request, turn)
    result = await chat_json.body(turn)
    await charge(request, result["usage"]["total_tokens"])
    return JSON(result)


@router.post(
    "/v1/chat/stream",
    responses=errors(400, 404, 502, 504),
    openapi_extra=request_body(StreamBody),
)
async def chat_stream_route(
    request: Request, conversations: ConversationsDep, actor: Actor
) -> Response:
    """Server-sent events `agent`, `tool_call_started`, `tool_call_completed`, `token`
    (`{"text"}`), then `done` (`{fullText, suggestions, timings: {ttft_ms, total_ms}, ...}`)
    or `error`. Body: `{sessionId?, userId, prompt, model?}`."""
    body = validate(StreamBody, parse_json(await request.body()))
    user = actor.required(body.userId, "userId")
    turn = await conversations.open(
        Ask(user, body.sessionId, body.prompt, body.model, streamed=True, rag=actor.identity.rag)
    )
    return stream_response(request, turn)


@router.get("/v1/sessions", responses=errors(400))
async def list_sessions(store: SessionsDep, actor: Actor, limit: Limit = 100) -> Response:
    """The sessions of the user this request acts for, the most recently updated first."""
    user = actor.user()
    if not user:
        raise InvalidRequest("'user_id' is required to list sessions", param="user_id")
    sessions = await store.for_user(user, limit)
    return JSON({"object": "list", "data": [s.public() for s in sessions]})


@router.get("/v1/sessions/{session_id}", responses=errors(400, 404))
async def get_session(session: Visible) -> Response:
    return JSON(session.public())


@router.get("/v1/sessions/{session_id}/messages", responses=errors(400, 404))
async def session_messages(session: Visible, store: SessionsDep, limit: Limit = 100) -> Response:
    """The last `limit` messages kept verbatim (older ones live on in the summary)."""
    messages = await store.messages(session.id, limit)
    return JSON({"object": "list", "session_id": session.id, "data": messages})


@router.delete("/v1/sessions/{session_id}", responses=errors(400, 404))
async def delete_session(session: Visible, store: SessionsDep) -> Response:
    await store.delete(session)
    return JSON({"id": session.id, "object": "session", "deleted": True})


@router.get("/v1/metrics/{session_id}", responses=errors(400, 404))
async def session_metrics(session: Visible, store: SessionsDep) -> Response:
    turns = await store.metrics(session.id)
    return JSON({"session_id": session.id, **aggregate(turns)})


@router.get("/v1/vitals")
async def vitals(gateway: ServicesDep) -> Response:
    """Uptime of this process, the p50/p95/p99 of its model turns' latency and time to first
    token (from the metrics' histograms; null with METRICS_ENABLED=false or before a turn),
    totals over every session in Redis, and the users' ratings of answers as they stand per
    model and per pipeline (`{up, down, count, positive_share}`); the last two null while Redis
    is unavailable."""
    body: dict[str, Any] = {
        "uptime_s": round(time.monotonic() - gateway.started, 1),
        "started_at": gateway.started_at,
        "percentiles": _percentiles(gateway.metrics),
    }
    try:
        totals = await gateway.sessions.totals()
        ratings = await gateway.feedback.totals()
    except GatewayError as exc:
        unknown = {"totals": None, "averages": None, "feedback": None}
        return JSON({**body, **unknown, "state_error": exc.message})
    feedback = {
        group: {name: tally.public() for name, tally in tallies.items()}
        for group, tallies in ratings.items()
    }
    turns = totals.get("turns", 0)
    averages = {
        name: round(totals.get(name, 0) / turns, 1) if turns else None
        for name in ("ttft_ms", "total_ms")
    }
    counted = {k: v for k, v in totals.items() if k not in ("ttft_ms", "total_ms")}
    return JSON({**body, "totals": counted, "averages": averages, "feedback": feedback})


def _percentiles(metrics: Metrics | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    qs = (0.5, 0.95, 0.99)
    return {
        "latency_ms": metrics.quantiles("gen_ai_client_operation_duration_seconds", qs),
        "ttft_ms": metrics.quantiles("gen_ai_server_time_to_first_token_seconds", qs),
    }
