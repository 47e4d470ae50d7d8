"""The pipelines API (under `/` and `/v1`): `GET /pipelines`, `GET /pipelines/{id}`, and
`POST /pipelines/{id}/execute` `{input, user_id?, session_id?, stream?}`.

A run for a user (named, or implied by the key) is a turn of their session, kept as /chat keeps
it, its agents' timings with the session's metrics; a run for no user is a turn of its own. The
answer is the /v1/chat/stream events (`stream: true`) or the /chat JSON body, with the
pipeline's id and each step's timing and tokens (`agents`). Each pipeline is also the model
`pipeline/<id>` of /v1/models and /v1/chat/completions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.api.deps import Actor, ConversationsDep, PipelinesDep, ServicesDep, asker
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json, validate
from app.api.sessions import stream_response
from app.api.wire import chat_json
from app.chat.stateful import Ask
from app.pipelines.catalogue import PREFIX
from app.pipelines.run import Pipeline
from app.providers.router import Needs
from app.security.ratelimit import charge

router = APIRouter()

_SESSION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str = Field(min_length=1)
    user_id: str | None = Field(None, min_length=1, max_length=256)
    session_id: str | None = Field(None, pattern=_SESSION_ID)
    stream: bool | None = None


def entry(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "object": "pipeline",
        "model": PREFIX + pipeline.id,
        "description": pipeline.description,
        "steps": pipeline.steps(),
        "models": [model or "default" for model in pipeline.models()],
    }


@router.get("/pipelines")
async def list_pipelines(pipelines: PipelinesDep) -> Response:
    return JSON({"object": "list", "data": [entry(p) for p in pipelines.listed()]})


@router.get("/pipelines/{pipeline_id}", responses=errors(404))
async def get_pipeline(pipeline_id: str, pipelines: PipelinesDep) -> Response:
    return JSON(entry(pipelines.get(pipeline_id)))


@router.post(
    "/pipelines/{pipeline_id}/execute",
    responses=errors(400, 404, 502, 504),
    openapi_extra=request_body(ExecuteBody),
)
async def execute(
    pipeline_id: str,
    request: Request,
    pipelines: PipelinesDep,
    conversations: ConversationsDep,
    gateway: ServicesDep,
    actor: Actor,
) -> Response:
    body = validate(ExecuteBody, parse_json(await request.body()))
    pipelines.get(pipeline_id)  # a 404 before anything is asked
    model = PREFIX + pipeline_id
    streamed = bool(body.stream)
    user = actor.user(body.user_id)
    if user is None and body.session_id is not None:
        user = actor.required(None, "user_id")  # a session belongs to a user
    if user is not None:
        ask = Ask(user, body.session_id, body.input, model, streamed, rag=actor.identity.rag)
        turn = await conversations.open(ask)
    else:
        chat = {"model": model, "messages": [{"role": "user", "content": body.input}]}
        needs = Needs(whole=not streamed, follow_ups=True)
        turn = await gateway.engine.chat(chat, needs, asker=asker(request, chat))
    if streamed:
        return stream_response(request, turn)
    result = await chat_json.body(turn)
    await charge(request, result["usage"]["total_tokens"])
    return JSON({"pipeline": pipeline_id, **result, "agents": result.get("agents", [])})
