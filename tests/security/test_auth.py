"""API_KEYS: Bearer-key authentication on every route but health, in OpenAI's 401 shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from app.main import create_app
from tests.conftest import MakeGateway, gateway_settings
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState
from tests.fakes.serve import serve

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
KEYS = ["k1", "k2"]
CHAT = ("POST", "/chat/completions", {"model": "openai/gpt-test", "messages": USER})
MODELS = ("GET", "/models", None)
MODEL = ("GET", "/models/openai/gpt-test", None)
EMBEDDINGS = ("POST", "/embeddings", {"model": "openai/embed-test", "input": "x"})
ROUTES = pytest.mark.parametrize(
    ("method", "path", "body"),
    [CHAT, MODELS, MODEL, EMBEDDINGS],
    ids=["chat", "models", "model", "embeddings"],
)
PREFIXES = pytest.mark.parametrize("prefix", ["/v1", ""], ids=["v1", "bare"])


@pytest.fixture(scope="module")
def url(openai_server: tuple[str, OpenAIUpstreamState]) -> Iterator[str]:
    """One gateway with API_KEYS=k1,k2 for the module (authentication keeps no state)."""
    upstream_url, _ = openai_server
    settings = gateway_settings(
        api_keys=KEYS, openai_base_url=f"{upstream_url}/v1", openai_api_key="upstream-key"
    )
    with serve(create_app(settings)) as base_url:
        yield base_url


def call(
    url: str, method: str, path: str, body: Any, authorization: str | None = None
) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=20)


def assert_401(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["www-authenticate"] == "Bearer"
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert error["param"] is None
    return error


@ROUTES
@PREFIXES
def test_no_header_is_401(url: str, prefix: str, method: str, path: str, body: Any) -> None:
    error = assert_401(call(url, method, prefix + path, body))
    assert "Authorization: Bearer" in error["message"]


@ROUTES
@PREFIXES
def test_a_wrong_key_is_401(url: str, prefix: str, method: str, path: str, body: Any) -> None:
    error = assert_401(call(url, method, prefix + path, body, "Bearer k3"))
    assert error["message"] == "Invalid API key."


@pytest.mark.parametrize(
    "authorization",
    ["Bearer k1x", "Bearer k", "Bearer", "Basic k1", "k1", "Token k1", "Bearer K1", "Bearerk1"],
)
def test_malformed_or_near_miss_credentials_are_401(url: str, authorization: str) -> None:
    assert_401(call(url, *CHAT, authorization))


@pytest.mark.parametrize("authorization", ["k1", "Basic azE6", "Token k1", "Bearerk1", "Bearer"])
def test_a_header_not_of_the_bearer_form_is_told_the_form(url: str, authorization: str) -> None:
    error = assert_401(call(url, *CHAT, authorization))
    assert error["message"] == "Invalid Authorization header: send 'Authorization: Bearer <key>'."


@ROUTES
@PREFIXES
@pytest.mark.parametrize("key", KEYS)
def test_each_key_works(url: str, prefix: str, method: str, path: str, body: Any, key: str) -> None:
    resp = call(url, method, prefix + path, body, f"Bearer {key}")
    assert resp.status_code == 200, resp.text


@ROUTES
@PREFIXES
def test_a_key_in_x_api_key_works_too(
    url: str, prefix: str, method: str, path: str, body: Any
) -> None:
    """Anthropic's clients send their key as `x-api-key`."""
    headers = {"x-api-key": "k2"}
    resp = httpx.request(method, f"{url}{prefix}{path}", json=body, headers=headers, timeout=20)
    assert resp.status_code == 200, resp.text
    headers["x-api-key"] = "k3"
    wrong = httpx.request(method, f"{url}{prefix}{path}", json=body, headers=headers, timeout=20)
    assert assert_401(wrong)["message"] == "Invalid API key."


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_bearer_scheme_is_case_insensitive(url: str, scheme: str) -> None:
    resp = call(url, *MODELS[:2], None, f"{scheme} k2")
    assert resp.status_code == 200, resp.text


def test_the_sdk_with_the_right_key(url: str) -> None:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="k2", max_retries=0) as sdk:
        completion = sdk.chat.completions.create(model="openai/gpt-test", messages=USER)
        assert completion.choices[0].message.content == GREETING
        assert "openai/gpt-test" in [model.id for model in sdk.models.list()]
        assert sdk.embeddings.create(model="openai/embed-test", input="x").data


def test_the_sdk_with_a_wrong_key_raises_authentication_error(url: str) -> None:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            sdk.chat.completions.create(model="openai/gpt-test", messages=USER)
        assert info.value.status_code == 401
        assert info.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            sdk.models.list()


def test_the_upstream_never_sees_the_clients_key(url: str, upstream: OpenAIUpstreamState) -> None:
    resp = call(url, *CHAT, "Bearer k1")
    assert resp.status_code == 200
    assert upstream.headers[-1]["authorization"] == "Bearer upstream-key"


@pytest.mark.parametrize("prefix", ["/v1", ""])
@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_health_is_open(url: str, prefix: str, path: str) -> None:
    assert call(url, "GET", prefix + path, None).status_code == 200


def test_unknown_routes_are_closed_too(url: str) -> None:
    assert_401(call(url, "GET", "/v1/no-such-route", None))
    resp = call(url, "GET", "/v1/no-such-route", None, "Bearer k1")
    assert resp.status_code == 404


def test_without_api_keys_everything_is_open(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    for prefix in ("/v1", ""):
        for method, path, body in (CHAT, MODELS, MODEL, EMBEDDINGS):
            resp = call(url, method, prefix + path, body)
            assert resp.status_code == 200, (prefix, path, resp.text)
            assert call(url, method, prefix + path, body, "Bearer anything").status_code == 200


def test_admin_api_keys_work_everywhere_an_ordinary_key_does(make_gateway: MakeGateway) -> None:
    url = make_gateway(admin_api_keys=["root"])
    for prefix in ("/v1", ""):
        for method, path, body in (CHAT, MODELS, MODEL, EMBEDDINGS):
            resp = call(url, method, prefix + path, body, "Bearer root")
            assert resp.status_code == 200, (prefix, path, resp.text)
            assert_401(call(url, method, prefix + path, body))


def test_cors_preflight_passes_before_auth(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k1"], cors_origins=["http://localhost:3000"])
    preflight = httpx.options(
        f"{url}/v1/chat/completions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    resp = httpx.get(
        f"{url}/v1/models",
        headers={"Origin": "http://localhost:3000", "Authorization": "Bearer k1"},
    )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-request-id" in resp.headers["access-control-expose-headers"].lower()
    denied = httpx.get(f"{url}/v1/models", headers={"Origin": "http://localhost:3000"})
    assert denied.status_code == 401
