"""fetch_url and search_and_fetch against a real page server on 127.0.0.1.

Loopback is refused by default, so only the tests that need the page server allow it, and the
SSRF tests allow no more than 127.0.0.1/32 so that other loopback forms stay refused. Every
address a test could connect to is loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from ddgs.exceptions import DDGSException
from yarl import URL

from app.config import load_settings
from app.errors import InvalidRequest, ToolError
from app.security.ssrf import AddressRefused
from app.tools import fetch
from app.tools.context import ToolContext
from app.tools.fetch import Fetcher, search_pages
from app.tools.registry import ToolRegistry
from app.tools.web_search import WebSearch
from tests.fakes.pages import (
    ARTICLE_SENTENCE,
    ARTICLE_TITLE,
    HUGE_SIZE,
    LATIN1,
    MARKDOWN,
    MENU_TEXT,
    PLAIN,
    PagesState,
    create_pages_app,
)
from tests.fakes.search import FakeDDGS, result
from tests.fakes.serve import free_port, serve

LOOPBACK = ["127.0.0.0/8"]
ONLY_127_0_0_1 = ["127.0.0.1/32"]

MakeFetcher = Callable[..., Fetcher]


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, PagesState]]:
    app, state = create_pages_app()
    with serve(app) as url:
        yield url, state


@pytest.fixture
def pages(site: tuple[str, PagesState]) -> tuple[str, PagesState]:
    url, state = site
    state.hits.clear()
    state.hosts.clear()
    return url, state


@pytest.fixture
async def make_fetcher() -> AsyncIterator[MakeFetcher]:
    made: list[Fetcher] = []

    def make(resolver: AbstractResolver | None = None, **overrides: Any) -> Fetcher:
        fetcher = Fetcher(load_settings(_env_file=None, **overrides).tools, 2.0, resolver)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


class ScriptedResolver(AbstractResolver):
    """Answers the n-th lookup with `answers[n]` (the last one from then on), whatever the name."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers[min(len(self.asked), len(self.answers) - 1)]
        self.asked.append(host)
        inet = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            ResolveResult(hostname=host, host=address, port=port, family=inet, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


class FailingResolver(ScriptedResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


# --- reading pages -------------------------------------------------------------------------


async def test_an_html_page_gives_its_title_and_main_text(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, _ = pages
    page = await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(f"{url}/article")
    assert page["url"] == f"{url}/article"
    assert (page["status"], page["content_type"]) == (200, "text/html")
    assert page["title"] == ARTICLE_TITLE
    assert ARTICLE_SENTENCE in page["text"]
    assert "Hynish" in page["text"]
    assert MENU_TEXT not in page["text"]
    assert "Ten ways to cook rice" not in page["text"]
    assert page["truncated"] is False
    assert "note" not in page


@pytest.mark.parametrize(
    ("path", "content_type", "text"),
    [
        ("/plain", "text/plain", PLAIN),
        ("/notes.md", "text/markdown", MARKDOWN),
        ("/data.json", "application/json", '{"tide":"noon","height_m":4.2}'),
        ("/latin1", "text/plain", LATIN1),
    ],
)
async def test_text_markdown_and_json_come_back_as_they_are(
    pages: tuple[str, PagesState],
    make_fetcher: MakeFetcher,
    path: str,
    content_type: str,
    text: str,
) -> None:
    url, _ = pages
    page = await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(url + path)
    assert (page["content_type"], page["text"], page["title"]) == (content_type, text, None)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/report.pdf", "application/pdf"), ("/blob", "application/octet-stream")],
)
async def test_other_content_types_are_refused(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher, path: str, content_type: str
) -> None:
    url, _ = pages
    with pytest.raises(InvalidRequest) as caught:
        await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(url + path)
    assert caught.value.message == (
        f"fetch_url reads HTML, text and JSON, and {url}{path} is {content_type}"
    )
    assert caught.value.param == "url"


async def test_the_body_is_read_no_further_than_fetch_max_bytes(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, _ = pages
    fetcher = make_fetcher(fetch_allowed_networks=LOOPBACK, fetch_max_bytes=1000)
    page = await fetcher.fetch(f"{url}/huge")
    assert page["text"] == "x" * 1000
    assert page["truncated"] is True
    assert page["note"] == "the page is longer than FETCH_MAX_BYTES; only its start was read"
    whole = make_fetcher(fetch_allowed_networks=LOOPBACK, fetch_max_chars=HUGE_SIZE)
    assert len((await whole.fetch(f"{url}/huge"))["text"]) == HUGE_SIZE


async def test_the_text_is_cut_at_fetch_max_chars(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, _ = pages
    page = await make_fetcher(fetch_allowed_networks=LOOPBACK, fetch_max_chars=200).fetch(
        f"{url}/article"
    )
    assert len(page["text"]) == 200
    assert page["text"].startswith(ARTICLE_TITLE)
    assert page["truncated"] is True
    assert page["note"] == "the text was cut at 200 characters"


async def test_a_page_that_never_finishes_is_abandoned_after_fetch_timeout(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, _ = pages
    fetcher = make_fetcher(fetch_allowed_networks=LOOPBACK, fetch_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ToolError) as caught:
        await fetcher.fetch(f"{url}/slow")
    assert time.monotonic() - started < 3
    assert caught.value.message == f"{url}/slow did not load within 0.5s"


@pytest.mark.parametrize(("path", "status"), [("/missing", "404 Not Found"), ("/broken", "500")])
async def test_http_errors_name_their_status(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher, path: str, status: str
) -> None:
    url, _ = pages
    with pytest.raises(ToolError) as caught:
        await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(url + path)
    assert caught.value.message.startswith(f"{url}{path} answered HTTP {status}")


async def test_a_connection_dropped_mid_body_is_a_clear_error(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, _ = pages
    with pytest.raises(ToolError) as caught:
        await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(f"{url}/cut")
    assert caught.value.message.startswith(f"fetching {url}/cut failed: Response payload")


async def test_legacy_numeric_hosts_stay_refused_even_when_loopback_is_allowed(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, state = pages
    with pytest.raises(InvalidRequest, match=r"^127\.1 is not a URL that can be fetched"):
        await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(
            f"http://127.1:{URL(url).port}/plain"
        )
    assert state.hits == {}


async def test_a_closed_port_is_a_clear_error(make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(fetch_allowed_networks=LOOPBACK)
    with pytest.raises(ToolError) as caught:
        await fetcher.fetch(f"http://127.0.0.1:{free_port()}/")
    assert caught.value.message == "could not reach 127.0.0.1: Connection refused"


async def test_a_network_without_dns_is_a_clear_error(make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(FailingResolver())
    with pytest.raises(ToolError) as caught:
        await fetcher.fetch("https://example.org/")
    assert caught.value.message == (
        "could not reach example.org: Temporary failure in name resolution"
    )


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/", "not a url", ""])
async def test_only_http_urls_are_fetched(make_fetcher: MakeFetcher, url: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await make_fetcher(ScriptedResolver("127.0.0.1")).fetch(url)
    assert caught.value.param == "url"


# --- redirects -----------------------------------------------------------------------------


async def test_redirects_are_followed_to_the_final_url(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, state = pages
    page = await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(
        f"{url}/redirect?to=/redirect%3Fto%3D/plain"
    )
    assert (page["url"], page["text"]) == (f"{url}/plain", PLAIN)
    assert state.hits == {"/redirect": 2, "/plain": 1}


async def test_redirects_stop_at_fetch_max_redirects(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, state = pages
    fetcher = make_fetcher(fetch_allowed_networks=LOOPBACK, fetch_max_redirects=2)
    with pytest.raises(ToolError) as caught:
        await fetcher.fetch(f"{url}/loop")
    assert caught.value.message == f"{url}/loop redirects more than 2 times"
    assert state.hits["/loop"] == 3


# --- SSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.1", "2130706433"])
async def test_loopback_is_refused_by_default_in_every_form(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher, host: str
) -> None:
    url, state = pages
    with pytest.raises(AddressRefused, match="a loopback address"):
        await make_fetcher().fetch(f"http://{host}:{URL(url).port}/article")
    assert state.hits == {}


@pytest.mark.parametrize(
    "target",
    [
        "http://[::1]:{port}/article",
        "http://127.0.0.2:{port}/article",
        "http://[::ffff:127.0.0.3]:{port}/article",
    ],
)
async def test_every_redirect_target_is_checked(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher, target: str
) -> None:
    url, state = pages
    location = target.format(port=URL(url).port)
    fetcher = make_fetcher(fetch_allowed_networks=ONLY_127_0_0_1)
    with pytest.raises(AddressRefused, match="a loopback address"):
        await fetcher.fetch(str(URL(url).with_path("/redirect").with_query(to=location)))
    assert state.hits == {"/redirect": 1}


async def test_a_redirect_to_another_scheme_is_refused(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, _ = pages
    with pytest.raises(InvalidRequest, match="only http and https"):
        await make_fetcher(fetch_allowed_networks=LOOPBACK).fetch(
            f"{url}/redirect?to=file:///etc/passwd"
        )


async def test_the_connection_goes_to_the_address_that_was_vetted(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, state = pages
    resolver = ScriptedResolver("127.0.0.1")
    fetcher = make_fetcher(resolver, fetch_allowed_networks=ONLY_127_0_0_1)
    named = f"http://pages.test:{URL(url).port}/plain"
    page = await fetcher.fetch(named)
    assert (page["url"], page["text"]) == (named, PLAIN)
    assert state.hosts == [f"pages.test:{URL(url).port}"]
    assert resolver.asked == ["pages.test", "pages.test"]


async def test_a_name_that_rebinds_between_check_and_connect_is_refused(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, state = pages
    resolver = ScriptedResolver("127.0.0.1", "127.0.0.2")
    fetcher = make_fetcher(resolver, fetch_allowed_networks=ONLY_127_0_0_1)
    with pytest.raises(AddressRefused, match=r"rebind\.test \(127\.0\.0\.2\)"):
        await fetcher.fetch(f"http://rebind.test:{URL(url).port}/plain")
    assert resolver.asked == ["rebind.test", "rebind.test"]
    assert state.hits == {}


# --- search_and_fetch and the registered tools ---------------------------------------------


async def test_search_and_fetch_reads_each_result_and_keeps_failures_apart(
    pages: tuple[str, PagesState], make_fetcher: MakeFetcher
) -> None:
    url, _ = pages
    search = WebSearch(
        "auto",
        FakeDDGS(
            [
                result("Skerryvore", f"{url}/article", "The lighthouse."),
                result("Gone", f"{url}/missing", "A page that was."),
                result("Report", f"{url}/report.pdf", "The annual report."),
                result("Unread", f"{url}/plain", "Beyond max_pages."),
            ]
        ),
    )
    fetcher = make_fetcher(fetch_allowed_networks=LOOPBACK, fetch_max_chars=600)
    found = await search_pages(search, fetcher, "skerryvore", 3)
    assert [item["title"] for item in found] == ["Skerryvore", "Gone", "Report"]
    first, missing, pdf = found
    assert first["snippet"] == "The lighthouse."
    assert first["text"].startswith(ARTICLE_TITLE)
    assert len(first["text"]) == 200
    assert first["note"] == "the text was cut at 200 characters"
    assert missing == {
        "title": "Gone",
        "url": f"{url}/missing",
        "snippet": "A page that was.",
        "error": f"{url}/missing answered HTTP 404 Not Found",
    }
    assert pdf["error"].endswith("is application/pdf")
    assert "text" not in pdf


async def test_search_and_fetch_fails_when_the_search_does(make_fetcher: MakeFetcher) -> None:
    search = WebSearch("auto", FakeDDGS(error=DDGSException("ConnectError: network is down")))
    with pytest.raises(ToolError, match="web search is unavailable: ConnectError"):
        await search_pages(search, make_fetcher(), "q", 2)


async def test_the_tools_are_registered_and_their_client_closed_at_shutdown(
    pages: tuple[str, PagesState],
) -> None:
    url, _ = pages
    settings = load_settings(_env_file=None, fetch_allowed_networks=LOOPBACK)
    context = ToolContext.open(settings.tools, settings.providers.connect_timeout)
    registry = ToolRegistry(settings.tools.tool_timeout, settings.tools.tool_result_max_chars)
    try:
        fetch.register_tools(registry.register, context)
        registry.enable(None)
        assert set(registry.tools) == {"fetch_url", "search_and_fetch"}
        pages_param = registry.tools["search_and_fetch"].parameters["properties"]["max_pages"]
        assert (pages_param["default"], pages_param["minimum"], pages_param["maximum"]) == (3, 1, 5)
        assert registry.tools["fetch_url"].parameters["required"] == ["url"]
        outcome = await registry.call("fetch_url", {"url": f"{url}/plain"})
        assert outcome.ok, outcome.content
        assert PLAIN in outcome.content
        refused = await registry.call("fetch_url", {"url": "http://[::1]/"})
        assert not refused.ok
        assert "loopback" in refused.content
    finally:
        await context.aclose()
