"""The OpenAPI schema, with the chat route documented too: it is a plain Starlette route (for
speed), which FastAPI would otherwise leave out."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.schemas import ChatCompletionRequest

_REF = "#/components/schemas/{model}"


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            request = ChatCompletionRequest.model_json_schema(ref_template=_REF)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request.pop("$defs", {}))
            components["ChatCompletionRequest"] = request
            schema["paths"]["/v1/chat/completions"] = {"post": _chat_operation()}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _chat_operation() -> dict[str, Any]:
    error = {"description": "An OpenAI error body: {error: {message, type, param, code}}"}
    return {
        "summary": "Create a chat completion (OpenAI's wire format, streamed or not)",
        "operationId": "chat_completions",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}
                }
            },
        },
        "responses": {
            "200": {
                "description": "A chat.completion, or with stream=true server-sent "
                "chat.completion.chunk events ending in `data: [DONE]`",
                "content": {"application/json": {}, "text/event-stream": {}},
            },
            **{code: error for code in ("400", "401", "404", "429", "502", "503", "504")},
        },
    }
