"""web_search over a fake ddgs client: results, errors, and the work kept off the event loop."""

from __future__ import annotations

import threading

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from app.config import load_settings
from app.errors import InvalidRequest, ToolError
from app.tools import web_search
from app.tools.context import ToolContext
from app.tools.registry import ToolRegistry
from app.tools.web_search import WebSearch
from tests.fakes.search import FakeDDGS, result

RESULTS = [
    result("Skerryvore - Wikipedia", "https://en.wikipedia.org/wiki/Skerryvore", "A reef."),
    result("Skerryvore Lighthouse", "https://nlb.org.uk/skerryvore", "Lit in 1844."),
    result("Tiree", "https://en.wikipedia.org/wiki/Tiree", "An island."),
]


async def test_results_are_title_url_and_snippet() -> None:
    fake = FakeDDGS(RESULTS)
    found = await WebSearch("auto", fake).search("  skerryvore  ", 2)
    assert found == [
        {
            "title": "Skerryvore - Wikipedia",
            "url": "https://en.wikipedia.org/wiki/Skerryvore",
            "snippet": "A reef.",
        },
        {
            "title": "Skerryvore Lighthouse",
            "url": "https://nlb.org.uk/skerryvore",
            "snippet": "Lit in 1844.",
        },
    ]
    assert fake.calls == [("skerryvore", {"max_results": 2, "backend": "auto"})]


async def test_the_search_runs_in_a_worker_thread_with_the_configured_backend() -> None:
    fake = FakeDDGS(RESULTS)
    await WebSearch("duckduckgo,brave", fake).search("tiree", 5)
    assert fake.threads != [threading.get_ident()]
    assert fake.calls[0][1]["backend"] == "duckduckgo,brave"


async def test_more_results_than_asked_for_are_cut() -> None:
    class Generous(FakeDDGS):
        def text(self, query: str, **kwargs: object) -> list[dict[str, object]]:
            return [result(f"r{i}", f"https://example.org/{i}", "") for i in range(10)]

    found = await WebSearch("auto", Generous()).search("q", 3)
    assert [item["title"] for item in found] == ["r0", "r1", "r2"]


@pytest.mark.parametrize("query", ["", "   "])
async def test_an_empty_query_is_refused_without_searching(query: str) -> None:
    fake = FakeDDGS(RESULTS)
    with pytest.raises(InvalidRequest) as caught:
        await WebSearch("auto", fake).search(query, 5)
    assert caught.value.param == "query"
    assert fake.calls == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (DDGSException("No results found."), "web search found no results for 'lighthouse'"),
        (TimeoutException("Request timed out"), "web search timed out: Request timed out"),
        (RatelimitException("202 Ratelimit"), "web search is rate limited"),
        (
            DDGSException("ConnectError: Network is unreachable (os error 101)"),
            "web search is unavailable: ConnectError: Network is unreachable",
        ),
    ],
)
async def test_ddgs_failures_become_clear_tool_errors(error: Exception, message: str) -> None:
    with pytest.raises(ToolError) as caught:
        await WebSearch("auto", FakeDDGS(error=error)).search("lighthouse", 5)
    assert caught.value.message.startswith(message)


async def test_the_tool_is_registered_with_its_bounds_and_configured_default() -> None:
    settings = load_settings(_env_file=None, search_max_results=7)
    context = ToolContext.open(settings.tools, settings.providers.connect_timeout)
    registry = ToolRegistry(settings.tools.tool_timeout, settings.tools.tool_result_max_chars)
    try:
        web_search.register_tools(registry.register, context)
    finally:
        await context.aclose()
    tool = registry.tools["web_search"]
    assert tool.parameters["required"] == ["query"]
    max_results = tool.parameters["properties"]["max_results"]
    assert (max_results["default"], max_results["minimum"], max_results["maximum"]) == (7, 1, 20)
    assert max_results["description"] == "how many results to return, 1 to 20."
    assert tool.description.startswith("Search the web.")
    with pytest.raises(InvalidRequest) as caught:
        tool.parse({"query": "tiree", "max_results": 0})
    assert caught.value.param == "max_results"
