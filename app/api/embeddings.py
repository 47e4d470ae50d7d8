"""POST /v1/embeddings, through a provider that has embeddings."""

from __future__ import annotations

import base64
import sys
from array import array

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import RouterDep
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import EmbeddingRequest, parse_json, validate
from app.errors import InvalidRequest

router = APIRouter()


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the vector as little-endian float32."""
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


@router.post(
    "/embeddings",
    responses=errors(400, 404, 502, 504),
    openapi_extra=request_body(EmbeddingRequest),
)
async def embeddings(request: Request, models: RouterDep) -> Response:
    req = validate(EmbeddingRequest, parse_json(await request.body()))
    if not req.model:
        raise InvalidRequest("'model' is a required property", param="model")
    route = await models.resolve(req.model)
    if not route.provider.capabilities.embeddings:
        raise InvalidRequest(f"the model '{route.id}' has no embeddings", param="model")
    raw = req.input
    inputs = [raw] if isinstance(raw, str) else raw
    if inputs and isinstance(inputs[0], int):
        inputs = [inputs]
    result = await route.provider.embed(route.model, inputs, req.dimensions)  # type: ignore[arg-type]
    encode = _base64 if req.encoding_format == "base64" else list
    return JSON(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(vector)}
                for i, vector in enumerate(result.vectors)
            ],
            "model": route.id,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }
    )
