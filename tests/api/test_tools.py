"""GET /v1/tools and running a tool directly over HTTP, including the seed API's routes."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from app.tools import calculator, clock, fetch, web_search
from tests.conftest import DEFAULT_TOOLS, MakeGateway
from tests.fakes.pages import ARTICLE_SENTENCE, ARTICLE_TITLE, create_pages_app
from tests.fakes.search import FakeDDGS, result
from tests.fakes.serve import serve


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    app, _ = create_pages_app()
    with serve(app) as url:
        yield url


@pytest.fixture
def web_gateway(make_gateway: MakeGateway, pages: str) -> str:
    """Search answered by a fake at the ddgs boundary, pages by the loopback page server."""
    search = FakeDDGS([result(ARTICLE_TITLE, f"{pages}/article", "About Skerryvore.")])
    plugins = [
        calculator.register_tools,
        clock.register_tools,
        partial(web_search.register_tools, client_factory=search),
        partial(fetch.register_tools, client_factory=search),
    ]
    return make_gateway(
        enabled_tools=None, tool_plugins=plugins, fetch_allowed_networks=["127.0.0.0/8"]
    )


def post(url: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30, **kwargs)


def assert_error(resp: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    return error


def test_list_shows_the_enabled_tools_as_openai_tools(make_gateway: MakeGateway) -> None:
    url = make_gateway(enabled_tools=None)
    for path in ("/v1/tools", "/tools"):
        body = httpx.get(f"{url}{path}").json()
        assert body["object"] == "list"
        assert [t["function"]["name"] for t in body["data"]] == DEFAULT_TOOLS
        for tool in body["data"]:
            assert tool["type"] == "function"
            assert tool["function"]["parameters"]["type"] == "object"


def test_enabled_tools_decides_the_list(make_gateway: MakeGateway) -> None:
    url = make_gateway(enabled_tools=["time", "system_info"])
    names = [t["function"]["name"] for t in httpx.get(f"{url}/v1/tools").json()["data"]]
    assert names == ["time", "system_info"]
    info = post(url, "/v1/tools/system_info", {}).json()["result"]
    assert {"cpu", "memory", "disk", "uptime"} <= set(info)


def test_run_a_tool_directly(make_gateway: MakeGateway) -> None:
    url = make_gateway(enabled_tools=None)
    resp = post(url, "/v1/tools/calculator", {"expression": "17% of 2400"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["tool"] == "calculator"
    assert body["result"]["result"] == 408
    assert body["duration_ms"] >= 0
    empty = httpx.post(f"{url}/tools/time", timeout=10)
    assert empty.status_code == 200
    assert empty.json()["result"]["zone"] == "UTC"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/tools/calculator", {}, "expression"),
        ("/v1/tools/calculator", {"expression": ["1"]}, "expression"),
        ("/v1/tools/calculator", {"expression": "9**9**9"}, "expression"),
        ("/v1/tools/time", {"zone": "Mars/Olympus_Mons"}, "zone"),
        ("/v1/tools/python", {"code": "   "}, "code"),
    ],
)
def test_bad_arguments_are_400_naming_the_field(
    make_gateway: MakeGateway, path: str, body: dict[str, Any], param: str
) -> None:
    url = make_gateway(enabled_tools=None)
    assert_error(post(url, path, body), 400, param)


def test_bodies_that_are_not_argument_objects_are_400(make_gateway: MakeGateway) -> None:
    url = make_gateway(enabled_tools=None)
    for raw in (b"{oops", b"[1, 2]", b'"text"'):
        resp = httpx.post(f"{url}/v1/tools/calculator", content=raw, timeout=10)
        assert_error(resp, 400)


def test_unknown_and_disabled_tools_are_404(make_gateway: MakeGateway) -> None:
    url = make_gateway(enabled_tools=None)
    for name in ("nope", "system_info"):
        error = assert_error(post(url, f"/v1/tools/{name}", {}), 404)
        assert name in error["message"]


def test_tools_need_the_key_when_keys_are_set(make_gateway: MakeGateway) -> None:
    url = make_gateway(enabled_tools=None, api_keys=["secret"])
    assert httpx.get(f"{url}/v1/tools").status_code == 401
    ok = httpx.get(f"{url}/v1/tools", headers={"Authorization": "Bearer secret"})
    assert ok.status_code == 200


def test_seed_search_route(web_gateway: str, pages: str) -> None:
    resp = post(web_gateway, "/api/v1/tools/search", {"query": "lighthouse", "max_results": 3})
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"] == [
        {"title": ARTICLE_TITLE, "url": f"{pages}/article", "snippet": "About Skerryvore."}
    ]
    assert_error(post(web_gateway, "/api/v1/tools/search", {}), 400, "query")


def test_seed_fetch_route(web_gateway: str, pages: str) -> None:
    resp = post(web_gateway, "/api/v1/tools/fetch", {"url": f"{pages}/article"})
    assert resp.status_code == 200, resp.text
    page = resp.json()["result"]
    assert page["title"] == ARTICLE_TITLE
    assert ARTICLE_SENTENCE in page["text"]


def test_seed_search_and_fetch_route(web_gateway: str, pages: str) -> None:
    resp = post(web_gateway, "/api/v1/tools/search-and-fetch", {"query": "lighthouse"})
    assert resp.status_code == 200, resp.text
    (found,) = resp.json()["result"]
    assert found["url"] == f"{pages}/article"
    assert ARTICLE_SENTENCE in found["text"]


def test_fetch_refuses_loopback_by_default(make_gateway: MakeGateway, pages: str) -> None:
    url = make_gateway(enabled_tools=["fetch_url"])
    error = assert_error(post(url, "/api/v1/tools/fetch", {"url": f"{pages}/article"}), 400, "url")
    assert "loopback" in error["message"]


def test_a_service_that_is_down_is_a_clear_502(make_gateway: MakeGateway) -> None:
    url = make_gateway(
        enabled_tools=["weather"], weather_geocoding_url="http://127.0.0.1:9/v1/search"
    )
    error = assert_error(post(url, "/v1/tools/weather", {"location": "Paris"}), 502)
    assert error["code"] == "tool_error"
    assert "unreachable" in error["message"]
