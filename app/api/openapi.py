"""The OpenAPI document: every route's request body and the errors it really answers with, each
an OpenAI error body (Anthropic's on the Messages API's paths); and the chat route, a plain
Starlette route (for speed) that FastAPI would otherwise leave out.

Routes read and validate their own bodies (so that bad input is a 400 naming the field), hence
`request_body()` for their documentation. FastAPI's 422 never happens (a bad parameter is a 400
too, which routes with constrained parameters declare), so it is left out. 401 is added to every
route that needs a key, 429 and 503 (rate limiting, which needs Redis) to every route that counts
against a key's limits.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.api.schemas import ChatCompletionRequest
from app.api.wire.anthropic_request import MessagesRequest, TokenCountRequest
from app.errors import speaks_anthropic
from app.security.auth import HEALTH_PATHS
from app.security.ratelimit import counted

_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error body, the answer to every request that fails."""

    error: ErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorBody(BaseModel):
    """Anthropic's error body, the answer to every request to its Messages API that fails."""

    type: Literal["error"]
    error: AnthropicErrorDetail


_ERRORS = {
    400: "Bad input: a body that is not JSON, a missing or invalid field or parameter (named in "
    "`param`), or something the model cannot do",
    401: "No API key, or not a valid one (only when the gateway has keys)",
    403: "Not allowed: a route for admin keys only, or a directory outside INDEX_ALLOWED_ROOTS",
    404: "No such model, tool, session, document or memory",
    413: "The request body is larger than MAX_REQUEST_BYTES, or a document than MAX_DOCUMENT_BYTES",
    429: "Over the API key's rate limit, or the upstream's (`Retry-After` says when to retry)",
    502: "The upstream, or the tool's service, failed",
    503: "Unavailable: the provider (unreachable, refusing, circuit open), Redis for state or "
    "rate limiting, or knowledge (no embedder, Chroma unreachable, an index of another model)",
    504: "The upstream, or the tool, took too long",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` for the errors it answers with besides 401, 429 and 503 of
    authentication and rate limiting (added to every route they apply to)."""
    return {str(status): _error(status) for status in statuses}


def request_body(schema: type[BaseModel] | dict[str, Any], required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting the JSON body a route reads itself (a model's nested models
    are not added to the document's components)."""
    if not isinstance(schema, dict):
        schema = schema.model_json_schema(ref_template=_REF)
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


def ref(model: type[BaseModel]) -> dict[str, Any]:
    """A reference to `model`, one of the document's components (`_COMPONENTS`)."""
    return {"$ref": _REF.format(model=model.__name__)}


def _error(status: int) -> dict[str, Any]:
    content = {"application/json": {"schema": ref(ErrorBody)}}
    return {"description": _ERRORS[status], "content": content}


_COMPONENTS = (
    ErrorBody,
    AnthropicErrorBody,
    ChatCompletionRequest,
    MessagesRequest,
    TokenCountRequest,
)
"""The models in the document's components: the error bodies, and request bodies that nest
models."""


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in _COMPONENTS:
                definition = model.model_json_schema(ref_template=_REF)
                components.update(definition.pop("$defs", {}))
                components[model.__name__] = definition
            schema["paths"]["/v1/chat/completions"] = {"post": _chat_operation()}
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    _complete(path, operation)
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(path: str, operation: dict[str, Any]) -> None:
    """Without FastAPI's 422; with the errors of authentication, rate limiting and, for a
    request with a body, its size (MAX_REQUEST_BYTES); in Anthropic's shape on its paths."""
    responses: dict[str, Any] = operation["responses"]
    responses.pop("422", None)
    if "requestBody" in operation:
        responses.setdefault("413", _error(413))
    if path not in HEALTH_PATHS:
        responses.setdefault("401", _error(401))
        if counted(path):
            responses.setdefault("429", _error(429))
            responses.setdefault("503", _error(503))
    if speaks_anthropic(path):
        anthropic = {"application/json": {"schema": ref(AnthropicErrorBody)}}
        for status, response in responses.items():
            if int(status) >= 400:
                responses[status] = {**response, "content": anthropic}
    operation["responses"] = dict(sorted(responses.items()))


def _chat_operation() -> dict[str, Any]:
    return {
        "summary": "Create a chat completion (OpenAI's wire format, streamed or not)",
        "operationId": "chat_completions",
        **request_body(ref(ChatCompletionRequest)),
        "responses": {
            "200": {
                "description": "A chat.completion, or with stream=true server-sent "
                "chat.completion.chunk events ending in `data: [DONE]`",
                "content": {"application/json": {}, "text/event-stream": {}},
            },
            **errors(400, 404, 502, 504),
        },
    }
