"""Each user's memories: list, add explicitly, delete one, and forget the user altogether
(memories, documents, sessions and ratings of answers, verified gone from Chroma, the keyword
index and Redis).
The user is the identity rules' (`api/deps.Actor`), as for documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.api.deps import Actor, FeedbackDep, KnowledgeDep, ServicesDep, SessionsDep
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json, validate
from app.errors import NotFound, StateUnavailable

router = APIRouter()

MemoryId = Annotated[str, Path(max_length=64)]


class MemoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # `content` is what OpenWebUI's own memory API takes
    text: str = Field(
        min_length=1, max_length=2000, validation_alias=AliasChoices("text", "content")
    )
    session_id: str | None = Field(None, max_length=128)
    user_id: str | None = Field(None, min_length=1, max_length=256)


@router.get("/v1/memories", responses=errors(503))
async def list_memories(knowledge: KnowledgeDep, actor: Actor) -> Response:
    """What the gateway remembers about the user, oldest first."""
    memories = await knowledge.memories.of(actor.owner())
    return JSON({"object": "list", "data": [memory.public() for memory in memories]})


@router.post(
    "/v1/memories",
    status_code=201,
    responses=errors(400, 503),
    openapi_extra=request_body(MemoryBody),
)
async def add_memory(request: Request, knowledge: KnowledgeDep, actor: Actor) -> Response:
    """Remember `text` for the user. A fact the gateway recognises ("I live in Rome") replaces
    the one it supersedes; the answer lists what changed."""
    body = validate(MemoryBody, parse_json(await request.body()))
    owner = actor.owner(body.user_id)
    changes = await knowledge.memories.add(owner, body.text, body.session_id)
    data = [{"event": c.event, "id": c.id, "text": c.text} for c in changes]
    return JSON({"object": "list", "data": data}, status_code=201)


@router.delete("/v1/memories/{memory_id}", responses=errors(400, 404, 503))
async def delete_memory(memory_id: MemoryId, knowledge: KnowledgeDep, actor: Actor) -> Response:
    if not await knowledge.memories.delete(actor.owner(), memory_id):
        raise NotFound(f"no memory '{memory_id}'", param="memory_id")
    return JSON({"id": memory_id, "object": "memory.deleted", "deleted": True})


@router.delete("/v1/memories", responses=errors(503))
async def forget_me(
    gateway: ServicesDep,
    knowledge: KnowledgeDep,
    sessions: SessionsDep,
    feedback: FeedbackDep,
    actor: Actor,
) -> Response:
    """Forget the user: every memory, document, session and rating of an answer (and the
    records of their answers that could be rated), then checked gone from Chroma, the keyword
    index and Redis (a 503 says which store still holds something)."""
    owner = actor.owner()
    # first: with Redis unavailable, nothing is deleted anywhere
    forgotten = await feedback.forget(owner)
    if gateway.metrics is not None:
        for rating in forgotten.ratings:
            gateway.metrics.withdrawn(rating.model, rating.pipeline, rating.rating)
    memories = await knowledge.memories.forget(owner)
    documents = await knowledge.documents.forget(owner)
    user = actor.user()
    removed_sessions = await sessions.forget_user(user) if user else 0
    left = await knowledge.leftovers(owner)
    if user and await sessions.count_user(user):
        left["redis_sessions"] = await sessions.count_user(user)
    if ratings := await feedback.count(owner):
        left["redis_feedback"] = ratings
    if left:
        held = ", ".join(f"{name}: {count}" for name, count in left.items())
        raise StateUnavailable(f"forgetting was incomplete, still stored: {held}")
    return JSON(
        {
            "object": "forget",
            "deleted": True,
            "memories": memories,
            "documents": documents,
            "sessions": removed_sessions,
            "feedback": len(forgotten.ratings),
        }
    )
