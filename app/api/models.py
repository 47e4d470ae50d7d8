"""GET /v1/models and /v1/models/{id}: every active provider's models as `provider/model`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import RouterDep
from app.api.openapi import errors
from app.api.responses import JSON
from app.errors import ModelNotFound
from app.providers.router import Route

router = APIRouter()

_STARTED = int(time.time())


def _entry(route: Route) -> dict[str, Any]:
    return {"id": route.id, "object": "model", "created": _STARTED, "owned_by": route.provider.name}


@router.get("/models")
async def list_models(models: RouterDep) -> Response:
    return JSON({"object": "list", "data": [_entry(route) for route in await models.models()]})


@router.get("/models/{model_id:path}", responses=errors(404))
async def get_model(model_id: str, models: RouterDep) -> Response:
    route = await models.lookup(model_id)
    if route is not None:
        return JSON(_entry(route))
    raise ModelNotFound(f"the model '{model_id}' does not exist")
