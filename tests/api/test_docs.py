"""/docs, /redoc and /openapi.json: served with no network (every script, style and icon from
the gateway itself) and readable without a key; DOCS_ENABLED=false leaves them out."""

from __future__ import annotations

import re
import shutil
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import MakeGateway

KEY = {"Authorization": "Bearer k1"}
_REFERENCES = re.compile(r"""(?:href|src)="([^"]+)"|url: '([^']+)'|spec-url="([^"]+)\"""")
CHROMIUM = "/usr/bin/chromium"


def references(html: str) -> list[str]:
    """Every URL a docs page loads: stylesheets, icons, scripts and the OpenAPI document."""
    return [next(filter(None, groups)) for groups in _REFERENCES.findall(html)]


@pytest.mark.parametrize(
    ("page", "kinds"),
    [
        ("/docs", {"text/css", "image/png", "text/javascript", "application/json"}),
        ("/redoc", {"image/png", "text/javascript", "application/json"}),
    ],
)
def test_a_docs_page_and_all_it_loads_come_from_the_gateway_without_a_key(
    make_gateway: MakeGateway, page: str, kinds: set[str]
) -> None:
    url = make_gateway(api_keys=["k1"])
    resp = httpx.get(f"{url}{page}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    loaded = references(resp.text)
    assert loaded
    seen = set()
    for reference in loaded:
        assert reference.startswith("/"), f"{page} loads {reference} from elsewhere"
        asset = httpx.get(urljoin(url, reference))
        assert asset.status_code == 200, (reference, asset.text)
        assert asset.content
        seen.add(asset.headers["content-type"].partition(";")[0])
    assert seen == kinds


def test_the_openapi_document_needs_no_key(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k1"])
    resp = httpx.get(f"{url}/openapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.json()["info"]["title"] == "AI gateway"
    assert httpx.get(f"{url}/v1/models").status_code == 401


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/assets/favicon.png"])
def test_docs_enabled_false_leaves_the_docs_out(make_gateway: MakeGateway, path: str) -> None:
    url = make_gateway(api_keys=["k1"], docs_enabled=False)
    resp = httpx.get(f"{url}{path}", headers=KEY)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{url}{path}").status_code == 401


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium")
async def test_swagger_ui_renders_in_a_browser_that_reaches_only_the_gateway(
    make_gateway: MakeGateway,
) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    url = make_gateway(api_keys=["k1"])
    requested: list[str] = []
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            await page.goto(f"{url}/docs")
            title = page.locator(".swagger-ui .info .title")
            await title.wait_for(timeout=20_000)
            assert "AI gateway" in await title.inner_text()
            operation = page.locator(".opblock-summary-path", has_text="/v1/chat/completions")
            await operation.first.wait_for(timeout=20_000)
        finally:
            await browser.close()
    assert requested
    assert [r for r in requested if not r.startswith(f"{url}/")] == []
