"""The gateway in front of a (fake) Ollama, driven by the official `openai` SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.api.sse import sse_events
from tests.conftest import MakeGateway
from tests.fakes.ollama_upstream import ERROR_MESSAGE, FakeOllama

NO_OPENAI: dict[str, Any] = {"openai_base_url": "", "openai_api_key": ""}
USER: list[Any] = [{"role": "user", "content": "Say hello to the world"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        },
    },
}


@pytest.fixture
def fake(ollama_server: tuple[str, FakeOllama]) -> FakeOllama:
    return ollama_server[1]


@pytest.fixture
def url(make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]) -> str:
    ollama_url, _ = ollama_server
    return make_gateway(ollama_base_url=ollama_url, **NO_OPENAI)


@pytest.fixture
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_sdk(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def ok_events(url: str, body: dict[str, Any]) -> list[Any]:
    resp, events = sse_events(url, body)
    assert resp.status_code == 200
    return events


def test_non_stream(sdk: openai.OpenAI, fake: FakeOllama) -> None:
    completion = sdk.chat.completions.create(model="ollama/llama3.2", messages=USER)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "ollama/llama3.2"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello, world!"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    sent = fake.chat_requests[-1]
    assert sent["model"] == "llama3.2"
    assert sent["stream"] is True
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello to the world"}


def test_bare_tagged_model_and_max_tokens(sdk: openai.OpenAI, fake: FakeOllama) -> None:
    completion = sdk.chat.completions.create(model="llama3.2:latest", messages=USER, max_tokens=2)
    assert completion.model == "ollama/llama3.2:latest"
    assert completion.choices[0].message.content == "Hello, "
    assert completion.choices[0].finish_reason == "length"
    assert fake.chat_requests[-1]["options"]["num_predict"] == 2


async def test_stream(async_sdk: openai.AsyncOpenAI) -> None:
    stream = await async_sdk.chat.completions.create(
        model="ollama/llama3.2",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.model == "ollama/llama3.2" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(reason is None for reason in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].usage.total_tokens == (
        chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    )
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(url: str) -> None:
    events = ok_events(url, {"model": "ollama/llama3.2", "messages": USER, "stream": True})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["choices"] for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_tool_call_is_converted(url: str) -> None:
    body = {"model": "ollama/tool-model", "messages": USER, "tools": [WEATHER_TOOL], "stream": True}
    events = ok_events(url, body)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    calls = [call for delta in deltas for call in delta.get("tool_calls", [])]
    assert len(calls) == 1
    [call] = calls
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_two_turn_tool_exchange(sdk: openai.OpenAI, fake: FakeOllama) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = sdk.chat.completions.create(
        model="ollama/tool-model", messages=messages, tools=[WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id
    function = call.function
    assert function.name == "get_weather"
    assert json.loads(function.arguments) == {"city": "Paris", "unit": "celsius"}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
    ]
    answer = sdk.chat.completions.create(
        model="ollama/tool-model", messages=messages, tools=[WEATHER_TOOL]
    )
    assert answer.choices[0].message.content == "Tool said: 18 C and sunny"
    assert answer.choices[0].finish_reason == "stop"
    sent = fake.chat_requests[-1]["messages"]
    assert sent[-2]["role"] == "assistant"
    assert sent[-2]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
    ]
    assert sent[-1] == {"role": "tool", "content": "18 C and sunny", "tool_name": "get_weather"}


async def test_missing_model_is_pulled_once_for_concurrent_requests(
    async_sdk: openai.AsyncOpenAI, fake: FakeOllama
) -> None:
    fake.pull_delay = 0.5  # long enough for all three requests to find the model missing
    assert "qwen2.5:0.5b" not in fake.installed
    completions = await asyncio.gather(
        *(
            async_sdk.chat.completions.create(model="ollama/qwen2.5:0.5b", messages=USER)
            for _ in range(3)
        )
    )
    assert [c.choices[0].message.content for c in completions] == ["Hello, world!"] * 3
    assert fake.pulls == {"qwen2.5:0.5b": 1}
    assert "qwen2.5:0.5b" in fake.installed
    # Missing three times, then answered three times.
    assert len(fake.chat_requests) == 6


def test_a_model_that_cannot_be_pulled_is_404(sdk: openai.OpenAI, fake: FakeOllama) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk.chat.completions.create(model="ollama/not-on-the-registry", messages=USER)
    assert info.value.code == "model_not_found"
    assert "not-on-the-registry" in info.value.message
    assert fake.pulls["not-on-the-registry:latest"] == 1


def test_without_auto_pull_a_missing_model_is_404(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    ollama_url, fake = ollama_server
    url = make_gateway(ollama_base_url=ollama_url, ollama_auto_pull=False, **NO_OPENAI)
    resp = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "ollama/qwen2.5:0.5b", "messages": USER}
    )
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"
    assert "qwen2.5:0.5b" in error["message"]
    assert "ollama pull qwen2.5:0.5b" in error["message"]
    assert "OLLAMA_AUTO_PULL" in error["message"]
    assert fake.pull_requests == []
    assert "qwen2.5:0.5b" not in fake.installed


def test_an_error_line_mid_stream_becomes_an_in_band_error(url: str) -> None:
    events = ok_events(url, {"model": "ollama/error-line", "messages": USER, "stream": True})
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["code"] == "upstream_error"
    assert error["message"] == f"ollama: {ERROR_MESSAGE}"
    assert set(error) == {"message", "type", "param", "code"}
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2])
    assert text == "Hello"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"


def test_the_sdk_raises_on_an_in_band_error(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="ollama/error-line", messages=USER, stream=True)
    with pytest.raises(openai.APIError, match="unexpected EOF"):
        for _ in stream:
            pass


def test_an_error_line_before_any_content_is_a_502(url: str) -> None:
    for stream in (False, True):
        resp = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "ollama/error-first", "messages": USER, "stream": stream},
        )
        assert resp.status_code == 502
        assert resp.json()["error"]["message"].startswith("ollama:")


def test_n_above_one_is_400_param_n(sdk: openai.OpenAI, fake: FakeOllama) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="ollama/llama3.2", messages=USER, n=2)
    assert info.value.status_code == 400
    assert info.value.param == "n"
    assert fake.chat_requests == []
