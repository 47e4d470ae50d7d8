"""LangChain's `OpenAI` LLM class (langchain-openai) against a real gateway on the fake upstream:
`invoke`, `batch` and `stream`."""

from __future__ import annotations

from langchain_openai import OpenAI
from pydantic import SecretStr

from tests.fakes.openai_upstream import OpenAIUpstreamState


def llm(url: str) -> OpenAI:
    return OpenAI(
        base_url=f"{url}/v1", model="openai/gpt-test", api_key=SecretStr("unused"), max_retries=0
    )


def test_invoke(gateway: str, upstream: OpenAIUpstreamState) -> None:
    assert llm(gateway).invoke("echo: from langchain") == "from langchain"
    sent = upstream.requests[-1]
    assert sent["prompt"] == "echo: from langchain"
    assert (sent["max_tokens"], sent["temperature"]) == (256, 0.7)  # LangChain's defaults


def test_batch(gateway: str) -> None:
    assert llm(gateway).batch(["echo: one", "echo: two"]) == ["one", "two"]


def test_stream(gateway: str) -> None:
    pieces = list(llm(gateway).stream("echo: streamed by langchain"))
    assert "".join(pieces) == "streamed by langchain"
    assert len([p for p in pieces if p]) == 3
