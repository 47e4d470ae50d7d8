"""OllamaProvider against the fake Ollama server, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from app.config import load_settings
from app.errors import (
    InvalidRequest,
    ModelNotFound,
    ProviderUnavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from app.providers.base import Chunk
from app.providers.ollama import OllamaProvider
from tests.fakes.ollama_upstream import ERROR_MESSAGE, SLOW_LINES, VERSION, FakeOllama
from tests.fakes.serve import free_port, serve

Factory = Callable[..., OllamaProvider]
USER = [{"role": "user", "content": "Say hello to the world"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def fake() -> FakeOllama:
    return FakeOllama()


@pytest.fixture
def url(fake: FakeOllama) -> Iterator[str]:
    with serve(fake.app) as base_url:
        yield base_url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def make(url: str, session: aiohttp.ClientSession) -> AsyncIterator[Factory]:
    made: list[OllamaProvider] = []

    def factory(**settings: Any) -> OllamaProvider:
        settings.setdefault("ollama_base_url", url)
        provider = OllamaProvider(load_settings(_env_file=None, **settings).providers, session)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(make: Factory) -> OllamaProvider:
    return make()


async def collect(provider: OllamaProvider, model: str, **body: Any) -> list[Chunk]:
    body.setdefault("messages", USER)
    return [chunk async for chunk in provider.stream_chat(model, {"model": model, **body})]


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def text(chunks: list[Chunk]) -> str:
    return "".join(delta.get("content") or "" for delta in deltas(chunks))


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def finish_reason(chunks: list[Chunk]) -> str | None:
    reasons: list[str | None] = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert all(reason is None for reason in reasons[:-1])
    return reasons[-1]


async def test_streams_content_then_finish_then_usage(provider: OllamaProvider) -> None:
    chunks = await collect(provider, "llama3.2")

    assert deltas(chunks)[0]["role"] == "assistant"
    assert all("role" not in delta for delta in deltas(chunks)[1:])
    assert text(chunks) == "Hello, world!"
    assert finish_reason(chunks) == "stop"
    assert chunks[-1] == {
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    }


async def test_max_tokens_gives_finish_reason_length(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    chunks = await collect(provider, "llama3.2", max_tokens=2)

    assert text(chunks) == "Hello, "
    assert finish_reason(chunks) == "length"
    assert fake.chat_requests[0]["options"] == {"num_predict": 2}


async def test_missing_counts_still_emit_usage(provider: OllamaProvider) -> None:
    chunks = await collect(provider, "no-counts")

    assert text(chunks) == "Hi"
    assert chunks[-1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


async def test_thinking_becomes_reasoning_content(provider: OllamaProvider) -> None:
    chunks = await collect(provider, "think-model")

    reasoning = "".join(delta.get("reasoning_content") or "" for delta in deltas(chunks))
    assert reasoning == "Let me think. Done."
    assert text(chunks) == "42"


async def test_tool_call_is_converted_to_openai_deltas(provider: OllamaProvider) -> None:
    chunks = await collect(provider, "tool-model", tools=[WEATHER_TOOL], tool_choice="auto")

    calls = [call for delta in deltas(chunks) for call in delta.get("tool_calls", [])]
    assert len(calls) == 1
    call = calls[0]
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert len(call["id"]) > len("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert finish_reason(chunks) == "tool_calls"


async def test_tool_round_trip_converts_history(provider: OllamaProvider, fake: FakeOllama) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "18C and sunny"},
    ]
    chunks = await collect(provider, "tool-model", messages=messages, tools=[WEATHER_TOOL])

    assert text(chunks) == "Tool said: 18C and sunny"
    assert finish_reason(chunks) == "stop"
    sent = fake.chat_requests[0]
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    }
    assert sent["messages"][2] == {
        "role": "tool",
        "content": "18C and sunny",
        "tool_name": "get_weather",
    }


async def test_request_conversion(make: Factory, fake: FakeOllama) -> None:
    provider = make(ollama_num_ctx=8192, ollama_keep_alive="10m")
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "text", "text": "Answer in French."},
                {"type": "image_url", "image_url": {"url": "data:text/plain,hi%20there"}},
            ],
        },
    ]
    await collect(
        provider,
        "llama3.2",
        messages=messages,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        stop="END",
        max_completion_tokens=50,
        frequency_penalty=0.5,
        presence_penalty=0.25,
        response_format={"type": "json_object"},
        tool_choice="none",
        tools=[WEATHER_TOOL],
    )

    sent = fake.chat_requests[0]
    assert sent["model"] == "llama3.2"
    assert sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": "What is this?\nAnswer in French.",
            "images": ["iVBORw0KGgo=", "aGkgdGhlcmU="],
        },
    ]
    assert sent["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"],
        "num_predict": 50,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.25,
        "num_ctx": 8192,
    }
    assert sent["keep_alive"] == "10m"
    assert sent["format"] == "json"
    assert "tools" not in sent


async def test_json_schema_becomes_format_schema(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    await collect(provider, "llama3.2", response_format=response_format, stop=["a", "b"])

    sent = fake.chat_requests[0]
    assert sent["format"] == schema
    assert sent["options"] == {"stop": ["a", "b"]}
    assert "keep_alive" not in sent


async def test_what_ollama_cannot_honour_is_refused_before_it_is_asked(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    with pytest.raises(InvalidRequest, match="ollama: response_format type 'regex'") as info:
        await collect(provider, "llama3.2", response_format={"type": "regex"})
    assert info.value.param == "response_format"
    with pytest.raises(InvalidRequest, match="ollama: logit_bias") as info:
        await collect(provider, "llama3.2", logit_bias={"50256": -100})
    assert info.value.param == "logit_bias"
    await collect(provider, "llama3.2", response_format={"type": "text"})
    assert "format" not in fake.chat_requests[0]
    assert len(fake.chat_requests) == 1


async def test_a_raw_completion_is_a_raw_generate(make: Factory, fake: FakeOllama) -> None:
    provider = make(ollama_num_ctx=4096)
    body = {"prompt": "Once upon a time", "max_tokens": 3, "stop": ["\n"], "temperature": 0.5}
    chunks = [chunk async for chunk in provider.stream_completion("llama3.2", body)]

    assert fake.chat_requests == []
    sent = fake.generate_requests[0]
    assert sent["prompt"] == "Once upon a time"
    assert sent["raw"] is True
    assert sent["stream"] is True
    assert sent["options"] == {
        "temperature": 0.5,
        "stop": ["\n"],
        "num_predict": 3,
        "num_ctx": 4096,
    }
    assert text(chunks) == "Hello, world"
    assert finish_reason(chunks) == "length"
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


async def test_a_raw_completion_of_a_missing_model_is_pulled_first(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    chunks = [c async for c in provider.stream_completion("gemma3", {"prompt": "Hi"})]
    assert text(chunks) == "Hello, world!"
    assert fake.pulls["gemma3:latest"] == 1


async def test_http_image_url_is_rejected(provider: OllamaProvider, fake: FakeOllama) -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(InvalidRequest, match="data: URL"):
        await collect(provider, "llama3.2", messages=[{"role": "user", "content": [part]}])
    assert fake.chat_requests == []


async def test_error_line_mid_stream_raises(provider: OllamaProvider) -> None:
    stream = provider.stream_chat("error-line", {"messages": USER})
    assert text([await anext(stream)]) == "Hello"
    with pytest.raises(UpstreamError, match="unexpected EOF") as info:
        await anext(stream)
    assert info.value.message == f"ollama: {ERROR_MESSAGE}"


async def test_error_line_first_raises_before_any_chunk(provider: OllamaProvider) -> None:
    with pytest.raises(UpstreamError, match="unexpected EOF"):
        await collect(provider, "error-first")


async def test_stream_without_done_line_raises(provider: OllamaProvider) -> None:
    with pytest.raises(UpstreamError, match="stream ended before the answer was complete"):
        await collect(provider, "truncated")


async def test_429_is_rate_limited_with_retry_after(provider: OllamaProvider) -> None:
    with pytest.raises(UpstreamRateLimited) as info:
        await collect(provider, "rate-limited")
    assert info.value.retry_after == 7
    assert info.value.retryable


async def test_connection_refused_is_provider_unavailable(
    session: aiohttp.ClientSession,
) -> None:
    settings = load_settings(
        _env_file=None, ollama_base_url=f"http://127.0.0.1:{free_port()}", connect_timeout=2
    )
    provider = OllamaProvider(settings.providers, session)
    with pytest.raises(ProviderUnavailable):
        await collect(provider, "llama3.2")
    with pytest.raises(ProviderUnavailable):
        await provider.health()


async def test_auto_pull_is_shared_by_concurrent_requests(
    make: Factory, fake: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.providers.ollama")
    fake.pull_delay = 0.3
    provider = make()

    answers = await asyncio.gather(*(collect(provider, "qwen2.5:0.5b") for _ in range(3)))

    assert [text(chunks) for chunks in answers] == ["Hello, world!"] * 3
    assert fake.pulls == {"qwen2.5:0.5b": 1}
    assert fake.pull_requests == [{"model": "qwen2.5:0.5b", "stream": True}]
    progress = [r.getMessage() for r in caplog.records if r.name == "app.providers.ollama"]
    assert any("100%" in message for message in progress)
    assert any("verifying sha256 digest" in message for message in progress)
    assert len(progress) < 25  # the pull streamed ~55 lines


async def test_auto_pull_off_raises_model_not_found(make: Factory, fake: FakeOllama) -> None:
    provider = make(ollama_auto_pull=False)
    with pytest.raises(ModelNotFound, match="ollama pull gemma3") as info:
        await collect(provider, "gemma3")
    assert "OLLAMA_AUTO_PULL=true" in info.value.message
    assert fake.pulls == {}


async def test_pulling_an_unknown_model_raises_model_not_found(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    with pytest.raises(ModelNotFound, match="file does not exist"):
        await collect(provider, "no-such-model")
    assert fake.pulls == {"no-such-model:latest": 1}
    assert len(fake.chat_requests) == 1


async def test_pull_is_bounded_by_pull_timeout(make: Factory, fake: FakeOllama) -> None:
    fake.pull_delay = 5
    provider = make(ollama_pull_timeout=0.2)
    with pytest.raises(UpstreamTimeout, match="pulling model 'gemma3'"):
        await collect(provider, "gemma3")


async def test_aclose_cancels_a_pending_pull(make: Factory, fake: FakeOllama) -> None:
    fake.pull_delay = 5
    provider = make()
    request = asyncio.create_task(collect(provider, "gemma3"))
    await wait_until(lambda: bool(fake.pulls))

    await provider.aclose()

    with pytest.raises(UpstreamError, match="cancelled"):
        await request


async def test_embed(provider: OllamaProvider, fake: FakeOllama) -> None:
    result = await provider.embed("nomic-embed-text", ["hello world", "bye"], dimensions=3)

    assert len(result.vectors) == 2
    assert all(len(vector) == 3 for vector in result.vectors)
    assert result.prompt_tokens == 3
    assert fake.embed_requests == [
        {"model": "nomic-embed-text", "input": ["hello world", "bye"], "dimensions": 3}
    ]


async def test_embed_rejects_token_ids(provider: OllamaProvider, fake: FakeOllama) -> None:
    with pytest.raises(InvalidRequest, match="token ids"):
        await provider.embed("nomic-embed-text", [[1, 2, 3]], dimensions=None)
    assert fake.embed_requests == []


async def test_list_models(provider: OllamaProvider) -> None:
    models = await provider.list_models()
    assert "llama3.2:latest" in models
    assert "tool-model:latest" in models


async def test_health(provider: OllamaProvider) -> None:
    assert await provider.health() == f"ollama {VERSION}"


async def test_closing_the_stream_early_stops_upstream(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    stream = provider.stream_chat("slow-stream", {"messages": USER})
    received = [await anext(stream) for _ in range(3)]
    assert text(received) == "tick tick tick "

    await stream.aclose()

    await wait_until(lambda: fake.client_went_away)
    assert fake.slow_lines_sent < SLOW_LINES
