"""The wikipedia tool against a fake MediaWiki on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from app.errors import InvalidRequest, ToolError
from app.tools import wikipedia
from app.tools.registry import ToolRegistry
from tests.fakes.mediawiki import FakeMediaWiki
from tests.fakes.serve import free_port, serve
from tests.tools.conftest import registry_of


@pytest.fixture
def wiki() -> FakeMediaWiki:
    return FakeMediaWiki()


@pytest.fixture
def wiki_url(wiki: FakeMediaWiki) -> Iterator[str]:
    with serve(wiki.app) as url:
        yield url


async def _registry(base_url: str, **settings: str) -> AsyncIterator[ToolRegistry]:
    api = f"{base_url}/{{language}}/w/api.php"
    async with registry_of(wikipedia.register_tools, wikipedia_api_url=api, **settings) as registry:
        yield registry


@pytest.fixture
async def tools(wiki_url: str) -> AsyncIterator[ToolRegistry]:
    async for registry in _registry(wiki_url):
        yield registry


async def test_summarises_the_best_match(tools: ToolRegistry, wiki: FakeMediaWiki) -> None:
    answer = await tools.run("wikipedia", {"query": "Ada Lovelace"})
    url = answer["url"]
    assert answer["title"] == "Ada Lovelace"
    assert answer["summary"].startswith("Augusta Ada King, Countess of Lovelace")
    assert url.endswith("/en/wiki/Ada_Lovelace")
    assert answer["other_results"] == ["Analytical Engine"]
    assert answer["source"] == f"Wikipedia: {url}"
    assert "note" not in answer
    search, page = wiki.requests
    assert search["action"] == "query"
    assert search["list"] == "search"
    assert search["srsearch"] == "Ada Lovelace"
    assert search["format"] == "json"
    assert page["titles"] == "Ada Lovelace"
    assert set(page["prop"].split("|")) == {"extracts", "info"}
    assert page["inprop"] == "url"
    assert {"exintro", "explaintext", "redirects"} <= set(page)


async def test_several_matches(tools: ToolRegistry) -> None:
    answer = await tools.run("wikipedia", {"query": "babbage"})
    assert answer["title"] == "Charles Babbage"
    assert set(answer["other_results"]) == {"Ada Lovelace", "Analytical Engine"}


async def test_follows_redirects(tools: ToolRegistry, wiki: FakeMediaWiki) -> None:
    answer = await tools.run("wikipedia", {"query": "Countess of Lovelace"})
    assert wiki.requests[-1]["titles"] == "Countess of Lovelace"
    assert answer["title"] == "Ada Lovelace"
    assert answer["url"].endswith("/en/wiki/Ada_Lovelace")
    assert answer["other_results"] == []


async def test_language_argument_overrides_the_setting(
    tools: ToolRegistry, wiki: FakeMediaWiki
) -> None:
    answer = await tools.run("wikipedia", {"query": "Berlin", "language": "DE"})
    assert answer["title"] == "Berlin"
    assert answer["summary"].startswith("Berlin ist die Hauptstadt")
    assert answer["url"].endswith("/de/wiki/Berlin")
    assert {request["language"] for request in wiki.requests} == {"de"}


async def test_language_setting(wiki_url: str, wiki: FakeMediaWiki) -> None:
    async for registry in _registry(wiki_url, wikipedia_language="de"):
        answer = await registry.run("wikipedia", {"query": "Hauptstadt"})
        assert answer["title"] == "Berlin"
    assert wiki.requests[0]["language"] == "de"


async def test_no_match_is_an_answer_not_an_error(tools: ToolRegistry) -> None:
    answer = await tools.run("wikipedia", {"query": "zzxqv nonexistent"})
    assert answer["found"] is False
    assert "no article matching 'zzxqv nonexistent'" in answer["message"]
    outcome = await tools.call("wikipedia", {"query": "zzxqv nonexistent"})
    assert outcome.ok


async def test_without_text_extracts_the_search_snippet_is_the_summary(
    wiki_url: str, wiki: FakeMediaWiki
) -> None:
    wiki.extracts = False
    async for registry in _registry(wiki_url):
        answer = await registry.run("wikipedia", {"query": "Babbage"})
    assert answer["title"] == "Charles Babbage"
    assert answer["summary"].startswith("Charles Babbage was an English mathematician")
    assert "<span" not in answer["summary"]
    assert "TextExtracts" in answer["note"]
    assert answer["url"].endswith("/en/wiki/Charles_Babbage")


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"query": "   "}, "query"),
        ({"query": "Paris", "language": "en.evil.example/x?"}, "language"),
        ({"query": "Paris", "language": "e"}, "language"),
        ({}, "query"),
    ],
)
async def test_bad_arguments(tools: ToolRegistry, arguments: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await tools.run("wikipedia", arguments)
    assert caught.value.param == param


async def test_server_error(tools: ToolRegistry, wiki: FakeMediaWiki) -> None:
    wiki.status = 500
    with pytest.raises(ToolError, match="Wikipedia answered HTTP 500"):
        await tools.run("wikipedia", {"query": "Paris"})


async def test_api_error(tools: ToolRegistry, wiki: FakeMediaWiki) -> None:
    wiki.api_error = "The search backend is down."
    with pytest.raises(ToolError, match="Wikipedia API error: The search backend is down"):
        await tools.run("wikipedia", {"query": "Paris"})


async def test_unreachable() -> None:
    async for registry in _registry(f"http://127.0.0.1:{free_port()}"):
        outcome = await registry.call("wikipedia", {"query": "Paris"})
    assert not outcome.ok
    assert outcome.content.startswith("Error: Wikipedia is unreachable: ")
