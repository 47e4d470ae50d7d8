"""OpenAICompatProvider's raw completions against the fake OpenAI upstream, over real HTTP: its
`text_completion` chunks read as chat chunks, and an upstream (or a model) without
`/completions` found out once and remembered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from app.errors import ModelNotFound, NoCompletions
from app.providers.base import Capabilities, Chunk
from app.providers.openai_compat import OpenAICompatProvider
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

Factory = Callable[..., OpenAICompatProvider]


@pytest.fixture
async def make(
    openai_server: tuple[str, OpenAIUpstreamState],
) -> AsyncIterator[Factory]:
    url, _ = openai_server
    async with aiohttp.ClientSession() as session:

        def factory(path: str = "/v1") -> OpenAICompatProvider:
            return OpenAICompatProvider(
                "openai",
                url + path,
                "",
                session,
                connect_timeout=2,
                request_timeout=2,
                capabilities=Capabilities(multiple_choices=True),
            )

        yield factory


async def complete(provider: OpenAICompatProvider, model: str, **body: Any) -> list[Chunk]:
    body.setdefault("prompt", "hi")
    return [chunk async for chunk in provider.stream_completion(model, body)]


def text(chunks: list[Chunk]) -> str:
    return "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])


def paths(upstream: OpenAIUpstreamState) -> list[str]:
    return ["completions" if "prompt" in r else "chat" for r in upstream.requests]


async def test_text_completion_chunks_are_read_as_chat_chunks(
    make: Factory, upstream: OpenAIUpstreamState
) -> None:
    chunks = await complete(make(), "gpt-test", max_tokens=3, stop=["\n"])

    choices = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
    assert "".join(c["delta"]["content"] for c in choices) == "Hello from the"
    assert [c["finish_reason"] for c in choices][-2:] == [None, "length"]
    assert all(set(c) == {"index", "delta", "finish_reason"} for c in choices)
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    sent = upstream.requests[-1]
    assert (sent["prompt"], sent["max_tokens"], sent["stop"]) == ("hi", 3, ["\n"])
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_a_model_refused_on_completions_is_remembered(
    make: Factory, upstream: OpenAIUpstreamState
) -> None:
    provider = make()
    for _ in range(2):
        with pytest.raises(NoCompletions, match="chat-only"):
            await complete(provider, "chat-only")
    assert paths(upstream) == ["completions"]
    assert text(await complete(provider, "gpt-test")) == GREETING


async def test_an_upstream_without_completions_is_remembered(
    make: Factory, upstream: OpenAIUpstreamState
) -> None:
    provider = make("/chat-only/v1")
    for model in ("gpt-test", "gpt-test", "embed-test"):
        with pytest.raises(NoCompletions):
            await complete(provider, model)
    assert upstream.missing_completions == 1
    chat = [c async for c in provider.stream_chat("gpt-test", {"messages": []})]
    assert chat[-1]["usage"]["completion_tokens"] == 5


async def test_a_missing_model_is_not_taken_for_a_missing_path(
    make: Factory, upstream: OpenAIUpstreamState
) -> None:
    provider = make()
    with pytest.raises(ModelNotFound, match="nope"):
        await complete(provider, "nope")
    assert len(await complete(provider, "gpt-test")) > 1
