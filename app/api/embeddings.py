"""POST /v1/embeddings: the gateway's own embedding model (`local/<EMBEDDING_MODEL>`, or that
name bare; so OpenWebUI can use the gateway as its embedder), or a provider's that embeds."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import cast

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import KnowledgeDep, RouterDep
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import EmbeddingRequest, parse_json, validate
from app.errors import InvalidRequest
from app.knowledge.embedder import Embedder

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
async def embeddings(request: Request, models: RouterDep, knowledge: KnowledgeDep) -> Response:
    req = validate(EmbeddingRequest, parse_json(await request.body()))
    if not req.model:
        raise InvalidRequest("'model' is a required property", param="model")
    embedder = knowledge.embedder
    if embedder is not None and req.model.lower() in _names(embedder.name):
        return await _local(req, embedder)
    route = await models.resolve(req.model)
    if not route.provider.capabilities.embeddings:
        raise InvalidRequest(f"the model '{route.id}' has no embeddings", param="model")
    raw = req.input
    inputs = [raw] if isinstance(raw, str) else raw
    if inputs and isinstance(inputs[0], int):
        inputs = [inputs]
    result = await route.provider.embed(route.model, inputs, req.dimensions)  # type: ignore[arg-type]
    return _answer(req, result.vectors, route.id, result.prompt_tokens)


def _names(model: str) -> set[str]:
    """The ids the gateway's own embedding model answers to."""
    bare = model.lower().rsplit("/", 1)[-1]
    return {model.lower(), bare, f"local/{bare}", f"sentence-transformers/{bare}"}


async def _local(req: EmbeddingRequest, embedder: Embedder) -> Response:
    raw = req.input
    texts = [raw] if isinstance(raw, str) else raw
    if not all(isinstance(text, str) for text in texts):
        raise InvalidRequest(f"{embedder.name} takes text input, not token ids", param="input")
    if req.dimensions is not None and req.dimensions != embedder.dimension:
        raise InvalidRequest(
            f"{embedder.name} has {embedder.dimension} dimensions, not {req.dimensions}",
            param="dimensions",
        )
    strings = cast("list[str]", texts)
    vectors = await embedder.documents(strings)
    tokenizer = embedder.window.tokenizer
    tokens = (
        sum(len(e.ids) for e in tokenizer.encode_batch(strings, add_special_tokens=False))
        if tokenizer is not None
        else sum(len(text) // 4 + 1 for text in strings)
    )
    return _answer(req, [vector.tolist() for vector in vectors], f"local/{embedder.name}", tokens)


def _answer(req: EmbeddingRequest, vectors: list[list[float]], model: str, tokens: int) -> Response:
    encode = _base64 if req.encoding_format == "base64" else list
    return JSON(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(vector)}
                for i, vector in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
