"""GET /v1/models and /v1/models/{id}: every active provider's models as `provider/model`, then
each pipeline as `pipeline/<id>`. The list has the models that chat (OpenWebUI offers it as its
chat picker); an embedding model is left out of it, though it can be retrieved by id and used on
/v1/embeddings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import PipelinesDep, RouterDep
from app.api.openapi import errors
from app.api.responses import JSON
from app.pipelines.catalogue import PREFIX
from app.pipelines.run import Pipeline
from app.providers.router import Route

router = APIRouter()

_STARTED = int(time.time())


def _entry(route: Route) -> dict[str, Any]:
    provider = route.provider
    entry = {"id": route.id, "object": "model", "created": _STARTED, "owned_by": provider.name}
    describe: Callable[[str], str] | None = getattr(provider, "describe", None)
    if describe is not None and (description := describe(route.model)):
        entry["description"] = description  # the embedded model says what it is good for
    return entry


def _pipeline(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": PREFIX + pipeline.id,
        "object": "model",
        "created": _STARTED,
        "owned_by": "pipeline",
        "description": pipeline.description,
    }


@router.get("/models")
async def list_models(models: RouterDep, pipelines: PipelinesDep) -> Response:
    routes = await models.chat_models()
    data = [_entry(route) for route in routes]
    if routes:  # a pipeline's agents need a model
        data += [_pipeline(pipeline) for pipeline in pipelines.listed()]
    return JSON({"object": "list", "data": data})


@router.get("/models/{model_id:path}", responses=errors(400, 404))
async def get_model(model_id: str, models: RouterDep, pipelines: PipelinesDep) -> Response:
    if model_id.startswith(PREFIX):
        return JSON(_pipeline(pipelines.get(model_id.removeprefix(PREFIX))))
    route = await models.lookup(model_id)
    if route is not None:
        return JSON(_entry(route))
    raise models.not_found(model_id)
