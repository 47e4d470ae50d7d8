"""Users' ratings of answers: POST /v1/feedback rates one, GET /v1/feedback (admin keys) lists
them.

An answer is rated by the id its wire gave it (`message_id`: `chatcmpl-…`, `msg_…`, `resp_…`,
`cmpl-…`; from when its record is written, some 20 ms after it ended, for FEEDBACK_TTL seconds),
or as a message of a stored conversation (`session_id` and `index`, for as long as the session
keeps it). Only the user it answered may rate it: whose an
answer is follows the identity rules (`security/identity.py`), as for the request that asked it;
another user's answer or session is a 404, like one that does not exist. A user's second rating
of an answer replaces the first.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from starlette.responses import Response

from app.api.deps import Actor, FeedbackDep, ServicesDep, SessionsDep, require_admin
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json, validate
from app.api.sessions import SESSION_ID
from app.errors import InvalidRequest, NotFound
from app.state.feedback import Answer, Feedback, rating_name
from app.state.sessions import SessionStore

router = APIRouter()


class FeedbackBody(BaseModel):
    """A rating of one answer: `message_id`, or `session_id` and `index`."""

    model_config = ConfigDict(extra="forbid")

    message_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The answer's id as its response gave it: a chat completion's, a Messages "
        "API message's, a Responses API response's or a completion's",
    )
    session_id: str | None = Field(
        None, pattern=SESSION_ID, description="A stored conversation (/chat, /v1/chat/stream)"
    )
    index: StrictInt | None = Field(
        None,
        ge=0,
        description="With session_id: the answer's position among the session's messages, "
        "counted from 0 over the whole session (its first user message is 0, the answer to it "
        "1, the next answer 3, …), as GET /v1/sessions/{id}/messages lists them while the "
        "session keeps them all",
    )
    rating: Literal[1, -1] = Field(description="1: a good answer; -1: a bad one")
    comment: str | None = Field(None, max_length=4000)
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The user a service key acts for; a key bound to an owner acts as its owner",
    )

    @field_validator("rating", mode="before")
    @classmethod
    def _one(cls, value: object) -> object:
        if type(value) is not int or value not in (1, -1):
            raise ValueError("must be 1 (a good answer) or -1 (a bad one)")
        return value


@router.post("/feedback", responses=errors(400, 404), openapi_extra=request_body(FeedbackBody))
async def rate(
    request: Request,
    gateway: ServicesDep,
    store: FeedbackDep,
    sessions: SessionsDep,
    actor: Actor,
) -> Response:
    """Rate an answer: `{message_id, rating, comment?}` or `{session_id, index, rating,
    comment?}`, `rating` 1 or -1. The rating as stored, with the model, pipeline and tools that
    produced the answer; `replaced` says whether it replaced the user's earlier rating of it."""
    body = validate(FeedbackBody, parse_json(await request.body()))
    owner = actor.owner(body.user_id)
    if body.message_id is not None:
        if body.session_id is not None or body.index is not None:
            raise InvalidRequest(
                "give either 'message_id' or 'session_id' with 'index', not both",
                param="message_id",
            )
        answer = await store.answer(body.message_id)
        if answer is None or answer.owner != owner:
            raise NotFound(f"no answer '{body.message_id}'", param="message_id")
    elif body.session_id is not None:
        if body.index is None:
            raise InvalidRequest("'index' is required with 'session_id'", param="index")
        answer = await _session_answer(sessions, body.session_id, body.index, owner)
    else:
        raise InvalidRequest(
            "'message_id' (or 'session_id' with 'index') is required", param="message_id"
        )
    feedback = Feedback(
        owner=owner,
        answer=answer,
        rating=body.rating,
        comment=body.comment,
        created_at=time.time(),
        message_id=body.message_id,
        session_id=body.session_id,
        index=body.index,
    )
    before = await store.rate(feedback)
    if gateway.metrics is not None and before != feedback.rating:
        replaced = rating_name(before) if before else None
        gateway.metrics.rated(answer.model, answer.pipeline, rating_name(body.rating), replaced)
    return JSON({**feedback.public(), "replaced": bool(before)})


async def _session_answer(
    sessions: SessionStore, session_id: str, index: int, owner: str
) -> Answer:
    session = await sessions.get(session_id)
    if session is None or session.user_id != owner:
        raise NotFound(f"no session '{session_id}'", param="session_id")
    message = await sessions.message_at(session_id, index)
    if message is None:
        raise NotFound(
            f"session '{session_id}' has no message {index} (counted from 0; a session keeps "
            "its last MAX_SESSION_MESSAGES)",
            param="index",
        )
    if message.get("role") != "assistant":
        raise InvalidRequest(
            f"message {index} of session '{session_id}' is the user's, not an answer (answers "
            "are at 1, 3, 5, …)",
            param="index",
        )
    return Answer.of(str(message.get("model", "")), message.get("tools_used", []), owner)


Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/feedback", dependencies=[Depends(require_admin)], responses=errors(400, 403))
async def list_feedback(
    store: FeedbackDep,
    model: Annotated[str | None, Query(min_length=1)] = None,
    pipeline: Annotated[str | None, Query(min_length=1)] = None,
    rating: Annotated[int | None, Query(description="1 or -1")] = None,
    limit: Limit = 100,
    after: Annotated[str | None, Query(min_length=1, description="The last id of a page")] = None,
) -> Response:
    """Every user's ratings (admin keys only), the newest first, of a `model`, a `pipeline`
    and a `rating` when given: `limit` of them after the one whose id is `after`."""
    if rating is not None and rating not in (1, -1):
        raise InvalidRequest("Invalid 'rating': must be 1 or -1", param="rating")
    page = await store.page(model=model, pipeline=pipeline, rating=rating, limit=limit, after=after)
    if page is None:
        raise InvalidRequest(f"no rating '{after}' in this listing", param="after")
    data: list[dict[str, Any]] = [item.public() for item in page.data]
    return JSON(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        }
    )
