"""GET /debug/routes: every route of the application, read from the application itself, with
its methods, auth need and summary; for admin keys only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.main import create_app
from tests.conftest import MakeGateway, gateway_settings
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import serve

ADMIN = {"Authorization": "Bearer admin-key"}
USER = {"Authorization": "Bearer user-key"}


def keyed_app(openai_server: tuple[str, OpenAIUpstreamState], **settings: Any) -> FastAPI:
    url, _ = openai_server
    return create_app(
        gateway_settings(
            api_keys=["user-key"],
            admin_api_keys=["admin-key"],
            openai_base_url=f"{url}/v1",
            openai_api_key="upstream-key",
            **settings,
        )
    )


@pytest.fixture
def app(openai_server: tuple[str, OpenAIUpstreamState]) -> FastAPI:
    app = keyed_app(openai_server)

    async def added_later() -> dict[str, str]:
        """A route added after the application was made.

        Only the first paragraph is the summary."""
        return {}

    app.add_api_route("/zz/added-later", added_later, methods=["PUT"])
    return app


@pytest.fixture
def url(app: FastAPI) -> Iterator[str]:
    with serve(app) as base_url:
        yield base_url


def routes(url: str, headers: dict[str, str] | None = ADMIN) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/debug/routes", headers=headers, timeout=20)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    data: list[dict[str, Any]] = body["data"]
    return data


def by_route(listed: list[dict[str, Any]]) -> dict[tuple[str, tuple[str, ...]], dict[str, Any]]:
    return {(route["path"], tuple(route["methods"])): route for route in listed}


def test_every_route_of_the_application_is_listed_sorted_by_path(app: FastAPI, url: str) -> None:
    listed = routes(url)
    expected = sorted(
        (context.path or "", tuple(sorted(context.methods or ())))
        for context in iter_route_contexts(app.routes)
    )
    assert [(route["path"], tuple(route["methods"])) for route in listed] == expected
    assert len(listed) > 60
    for route in listed:
        assert set(route) == {"path", "methods", "auth", "summary", "name"}
        assert route["summary"], route
        assert "\n" not in route["summary"]
    later = by_route(listed)[("/zz/added-later", ("PUT",))]
    assert later["summary"] == "A route added after the application was made."
    assert later["auth"] == "key"
    assert listed[-1] == later


def test_each_route_says_what_it_needs(url: str) -> None:
    listed = by_route(routes(url))
    needs = {
        ("/health", ("GET",)): "public",
        ("/v1/health/ready", ("GET",)): "public",
        ("/docs", ("GET",)): "public",
        ("/openapi.json", ("GET", "HEAD")): "public",
        ("/docs/assets", ()): "public",
        ("/v1/chat/completions", ("POST",)): "key",
        ("/chat/completions", ("POST",)): "key",
        ("/v1/models", ("GET",)): "key",
        ("/cache/stats", ("GET",)): "key",
        ("/v1/memories", ("DELETE",)): "key",
        ("/v1/feedback", ("POST",)): "key",
        ("/v1/feedback", ("GET",)): "admin",
        ("/feedback", ("GET",)): "admin",
        ("/cache/invalidate/{name}", ("DELETE",)): "admin",
        ("/debug/routes", ("GET",)): "admin",
        ("/v1/keys", ("GET",)): "admin",
        ("/v1/keys", ("POST",)): "admin",
        ("/v1/keys/{key_id}", ("DELETE",)): "admin",
    }
    assert {route: listed[route]["auth"] for route in needs} == needs
    admin_only = sorted(path for (path, _), route in listed.items() if route["auth"] == "admin")
    assert admin_only == [
        "/cache/invalidate/{name}",
        "/debug/routes",
        "/feedback",
        "/v1/feedback",
        "/v1/keys",
        "/v1/keys",
        "/v1/keys/{key_id}",
    ]
    invalidate = listed[("/cache/invalidate/{name}", ("DELETE",))]
    assert invalidate["summary"] == (
        'Remove every entry of one cache: `{"invalidated": <keys removed>}` (admin keys only).'
    )
    assert invalidate["name"] == "invalidate"
    # a route without a docstring: its OpenAPI summary, made from its name
    assert listed[("/v1/models", ("GET",))]["summary"] == "List Models"


def test_only_admin_keys_may_read_it(url: str) -> None:
    refused = httpx.get(f"{url}/debug/routes", headers=USER)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "permission_denied"
    assert error["type"] == "invalid_request_error"
    missing = httpx.get(f"{url}/debug/routes")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(f"{url}/debug/routes", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    resp = httpx.get(f"{url}/debug/routes", headers=ADMIN)
    assert resp.status_code == 200
    assert resp.json()["keys_required"] is True
    assert httpx.get(f"{url}/v1/debug/routes", headers=ADMIN).status_code == 404


def test_a_gateway_without_keys_lists_them_to_anyone(make_gateway: MakeGateway) -> None:
    """An open gateway (a development setup) is open everywhere, admin routes included; the
    listing still says what each route needs once keys exist."""
    resp = httpx.get(f"{make_gateway()}/debug/routes")
    assert resp.status_code == 200
    assert resp.json()["keys_required"] is False
    listed = by_route(resp.json()["data"])
    assert listed[("/debug/routes", ("GET",))]["auth"] == "admin"


def test_without_docs_the_docs_are_not_listed(
    openai_server: tuple[str, OpenAIUpstreamState],
) -> None:
    with serve(keyed_app(openai_server, docs_enabled=False)) as url:
        paths = {route["path"] for route in routes(url)}
    assert not paths & {"/docs", "/redoc", "/openapi.json", "/docs/assets"}
    assert "/health" in paths


def test_it_is_documented_with_its_403(url: str) -> None:
    schema = httpx.get(f"{url}/openapi.json").json()
    responses = schema["paths"]["/debug/routes"]["get"]["responses"]
    assert {"401", "403"} <= set(responses)
