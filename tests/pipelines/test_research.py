"""The `research` pipeline through a real gateway: search (a fake at ddgs' boundary), the top
pages read from a real page server on loopback at once, the answer from them with its
sources."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import httpx
import pytest

from app.tools import calculator, fetch, web_search
from tests.api.test_sessions import events
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.pages import ARTICLE_SENTENCE, ARTICLE_TITLE, create_pages_app
from tests.fakes.search import FakeDDGS, result
from tests.fakes.serve import serve


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    app, _ = create_pages_app()
    with serve(app) as url:
        yield url


def gateway_with(make_gateway: MakeGateway, search: FakeDDGS, **settings: object) -> str:
    plugins = [
        calculator.register_tools,
        partial(web_search.register_tools, client_factory=search),
        partial(fetch.register_tools, client_factory=search),
    ]
    return make_gateway(
        enabled_tools=None,
        tool_plugins=plugins,
        fetch_allowed_networks=["127.0.0.0/8"],
        default_model="openai/gpt-test",
        **settings,
    )


def test_search_read_and_answer_with_sources(
    make_gateway: MakeGateway, pages: str, upstream: OpenAIUpstreamState
) -> None:
    search = FakeDDGS(
        [
            result(ARTICLE_TITLE, f"{pages}/article", "About Skerryvore."),
            result("Notes", f"{pages}/notes.md", "Some notes."),
            result("Gone", f"{pages}/missing", "Not there."),
            result("Fourth", f"{pages}/plain", "Never read: three pages at most."),
        ]
    )
    url = gateway_with(make_gateway, search)
    resp, found = events(
        url, {"input": "Who built Skerryvore?", "stream": True}, path="/pipelines/research/execute"
    )
    assert resp.status_code == 200
    assert search.calls[0][0] == "Who built Skerryvore?"
    names = [name for name, _ in found]
    assert names.count("tool_call_started") == 4  # one search, three pages at once
    completed = [data for name, data in found if name == "tool_call_completed"]
    assert [c["name"] for c in completed].count("fetch_url") == 3
    assert sum(1 for c in completed if not c["ok"]) == 1  # /missing: 404
    done = found[-1][1]
    assert [step["name"] for step in done["agents"]] == ["search", "read", "answer"]
    assert [step["detail"] for step in done["agents"][:2]] == ["3 results", "2 pages"]
    assert [s["url"] for s in done["sources"]] == [f"{pages}/article", f"{pages}/notes.md"]
    asked = upstream.requests[0]["messages"][0]["content"]
    assert f"[1] {ARTICLE_TITLE} ({pages}/article)" in asked
    assert ARTICLE_SENTENCE in asked
    assert "[2] Notes" in asked
    assert "/plain" not in asked


def test_citations_reach_openai_clients(make_gateway: MakeGateway, pages: str) -> None:
    search = FakeDDGS([result(ARTICLE_TITLE, f"{pages}/article", "About Skerryvore.")])
    url = gateway_with(make_gateway, search)
    body = {"model": "pipeline/research", "messages": [{"role": "user", "content": "Who?"}]}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).json()
    notes = answer["choices"][0]["message"]["annotations"]
    assert [n["url_citation"]["url"] for n in notes] == [f"{pages}/article"]


def test_listed_only_with_its_tools(make_gateway: MakeGateway, pages: str) -> None:
    with_tools = gateway_with(make_gateway, FakeDDGS([]))
    ids = [p["id"] for p in httpx.get(f"{with_tools}/pipelines").json()["data"]]
    assert "research" in ids
    without = make_gateway(default_model="openai/gpt-test")
    ids = [p["id"] for p in httpx.get(f"{without}/pipelines").json()["data"]]
    assert "research" not in ids


def test_no_results_still_answers(make_gateway: MakeGateway, upstream: OpenAIUpstreamState) -> None:
    url = gateway_with(make_gateway, FakeDDGS([]))
    result_ = httpx.post(f"{url}/pipelines/research/execute", json={"input": "x"}, timeout=30)
    body = result_.json()
    assert body["sources"] == []
    assert [s["detail"] for s in body["agents"][:2]] == ["0 results", "0 pages"]
    assert "(none could be read)" in upstream.requests[0]["messages"][0]["content"]
