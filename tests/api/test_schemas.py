"""Request bodies as every JSON-taking route parses them, on a real gateway: nesting is bounded
at parse time, so a deep body is a 400 in OpenAI's shape and nothing of it is kept."""

from __future__ import annotations

import httpx
import pytest
import redis

from app.api.schemas import MAX_JSON_DEPTH
from tests.conftest import MakeGateway

USER = b'[{"role": "user", "content": "hi"}]'
ROUTES = {
    "/v1/chat/completions": b'{"model": "openai/gpt-test", "messages": %s, "metadata": %s}',
    "/chat/completions": b'{"model": "openai/gpt-test", "messages": %s, "metadata": %s}',
    "/v1/embeddings": b'{"model": "openai/embed-test", "input": "x", "extra": %s%s}',
    "/chat": b'{"user_id": "u", "message": "hi", "history": %s, "extra": %s}',
    "/v1/chat/stream": b'{"userId": "u", "prompt": "hi", "history": %s, "extra": %s}',
    "/v1/tools/calculator": b'{"expression": "1+1", "messages": %s, "extra": %s}',
}


def nested(levels: int) -> bytes:
    """A JSON value `levels` deep (`[[...]]`), written out: orjson will not dump it."""
    return b"[" * levels + b"]" * levels


def body(path: str, depth: int) -> bytes:
    """The route's body with one field nested so that the whole body is `depth` levels deep."""
    template = ROUTES[path]
    if path == "/v1/embeddings":
        return template % (b"", nested(depth - 1))
    return template % (USER, nested(depth - 1))


@pytest.fixture
def url(make_gateway: MakeGateway) -> str:
    return make_gateway(enabled_tools=["calculator"])


@pytest.mark.parametrize("depth", [254, 300, MAX_JSON_DEPTH + 1])
@pytest.mark.parametrize("path", list(ROUTES))
def test_a_body_nested_too_deep_is_400_and_keeps_nothing(
    url: str, redis_url: str, path: str, depth: int
) -> None:
    resp = httpx.post(
        f"{url}{path}",
        content=body(path, depth),
        headers={"Content-Type": "application/json"},
        timeout=20,
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == (
        f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
    )
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("session*") == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat"])
def test_a_body_at_the_depth_limit_is_answered(url: str, path: str) -> None:
    resp = httpx.post(
        f"{url}{path}",
        content=body(path, MAX_JSON_DEPTH),
        headers={"Content-Type": "application/json"},
        timeout=20,
    )
    assert resp.status_code == 200, resp.text


def test_a_body_past_the_parsers_own_limit_is_400(url: str) -> None:
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        content=body("/v1/chat/completions", 2000),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
