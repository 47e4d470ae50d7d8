"""The `rag-qa` pipeline on a real gateway with the real embedder and Chroma: answers only from
the user's documents, and says so at once when none is relevant."""

from __future__ import annotations

import httpx

from app.pipelines.rag_qa import NOTHING_FOUND, PROMPT
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.knowledge.test_grounded_chat import QUESTION, with_document


def chat(url: str, text: str, **body: object) -> httpx.Response:
    messages = [{"role": "user", "content": text}]
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "pipeline/rag-qa", "messages": messages, **body},
        timeout=60,
    )


def test_answers_from_the_passages_citing_them(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = with_document(make_gateway, default_model="openai/gpt-test")
    answer = chat(url, QUESTION).json()
    sent = upstream.requests[-1]["messages"]
    assert sent[0]["content"].endswith(PROMPT)
    assert "[1] (boiler.md, line" in sent[-2]["content"]
    assert sent[-1] == {"role": "user", "content": QUESTION}
    notes = answer["choices"][0]["message"]["annotations"]
    assert notes[0]["url_citation"]["url"].startswith(f"{url}/v1/documents/doc-")
    executed = httpx.post(
        f"{url}/pipelines/rag-qa/execute", json={"input": QUESTION}, timeout=60
    ).json()
    assert executed["sources"][0]["name"] == "boiler.md"
    assert executed["agents"][0]["detail"].startswith("from ")


def test_nothing_relevant_is_said_without_asking_a_model(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = with_document(make_gateway, default_model="openai/gpt-test")
    answer = chat(url, "Who won the 1998 football world cup?").json()
    assert answer["choices"][0]["message"]["content"] == NOTHING_FOUND
    assert upstream.requests == []


def test_listed_only_with_document_retrieval(make_gateway: MakeGateway) -> None:
    on = make_gateway(default_model="openai/gpt-test")
    assert "rag-qa" in [p["id"] for p in httpx.get(f"{on}/pipelines").json()["data"]]
    off = make_gateway(default_model="openai/gpt-test", rag_enabled=False)
    assert "rag-qa" not in [p["id"] for p in httpx.get(f"{off}/pipelines").json()["data"]]
