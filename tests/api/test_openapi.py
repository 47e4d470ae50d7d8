"""/openapi.json documents what the gateway really does: every request body, every error as an
OpenAI error body with its status, and never FastAPI's 422, which the gateway never answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MakeGateway

ERROR_REF = "#/components/schemas/ErrorBody"
ANTHROPIC_ERROR_REF = "#/components/schemas/AnthropicErrorBody"
NOT_ERROR_BODIES = {("get", "/v1/health"), ("get", "/v1/health/ready"), ("get", "/cache/health")}
"""Their 503 is the route's own report, not an error."""
UPSTREAM = {"400", "401", "404", "413", "429", "502", "503", "504"}


@pytest.fixture
def document(make_gateway: MakeGateway) -> dict[str, Any]:
    schema: dict[str, Any] = httpx.get(f"{make_gateway()}/openapi.json").json()
    return schema


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_422_appears_nowhere(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]


def test_every_post_route_documents_its_json_body(document: dict[str, Any]) -> None:
    posts = [(path, op) for method, path, op in operations(document) if method == "post"]
    assert len(posts) == 20
    uploads = {"/v1/documents", "/upload"}
    for path, operation in posts:
        body = operation.get("requestBody")
        assert body is not None, path
        kind = "multipart/form-data" if path in uploads else "application/json"
        assert body["content"][kind]["schema"], path
    embeddings = document["paths"]["/v1/embeddings"]["post"]["requestBody"]
    assert embeddings["required"] is True
    schema = embeddings["content"]["application/json"]["schema"]
    assert schema["required"] == ["input"]
    assert set(schema["properties"]) >= {"model", "input", "encoding_format", "dimensions"}
    tool = document["paths"]["/v1/tools/{name}"]["post"]["requestBody"]
    assert tool["required"] is False
    assert tool["content"]["application/json"]["schema"]["type"] == "object"


def test_every_error_response_is_an_error_body_of_its_api(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"message", "type", "param", "code"}
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (method, path) in NOT_ERROR_BODIES:
                continue
            schema = response["content"]["application/json"]["schema"]
            ref = ANTHROPIC_ERROR_REF if path.startswith("/v1/messages") else ERROR_REF
            assert schema == {"$ref": ref}, (method, path, status)
            assert response["description"]


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in components, ref


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v1/chat/completions", UPSTREAM),
        ("post", "/v1/embeddings", UPSTREAM),
        ("post", "/v1/responses", UPSTREAM),
        ("get", "/v1/responses/{response_id}", {"400", "401", "404", "429", "503"}),
        ("delete", "/v1/responses/{response_id}", {"400", "401", "404", "429", "503"}),
        ("get", "/v1/responses/{response_id}/input_items", {"400", "401", "404", "429", "503"}),
        ("get", "/v1/models", {"401"}),
        ("get", "/v1/models/{model_id}", {"400", "401", "404"}),
        ("get", "/v1/tools", {"401", "429", "503"}),
        ("post", "/v1/tools/{name}", UPSTREAM),
        ("post", "/api/v1/tools/search", UPSTREAM),
        ("post", "/chat", UPSTREAM),
        ("post", "/v1/chat/stream", UPSTREAM),
        ("post", "/v1/messages", UPSTREAM),
        ("post", "/v1/messages/count_tokens", {"400", "401", "404", "413", "429", "503"}),
        ("get", "/v1/sessions", {"400", "401", "429", "503"}),
        ("get", "/v1/sessions/{session_id}", {"400", "401", "404", "429", "503"}),
        ("delete", "/cache/invalidate/{name}", {"400", "401", "403", "429", "503"}),
        ("get", "/debug/routes", {"401", "403", "429", "503"}),
        ("get", "/v1/keys", {"401", "403", "429", "503"}),
        ("post", "/v1/keys", {"201", "400", "401", "403", "413", "429", "503"}),
        ("delete", "/v1/keys/{key_id}", {"400", "401", "403", "404", "429", "503"}),
        ("get", "/v1/health", {"503"}),
        ("get", "/v1/health/live", set()),
    ],
)
def test_each_route_documents_the_errors_it_answers_with(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    responses = document["paths"][path][method]["responses"]
    assert {status for status in responses if status != "200"} == statuses


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [("GET", "/v1/sessions?user_id=u&limit=0", "limit"), ("DELETE", "/cache/invalidate/x", "name")],
)
def test_a_documented_bad_parameter_is_a_400_not_a_422(
    make_gateway: MakeGateway, method: str, path: str, param: str
) -> None:
    resp = httpx.request(method, f"{make_gateway()}{path}")
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
