"""Quick checks that the fake OpenAI upstream speaks the wire format the gateway expects."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState, create_openai_upstream
from tests.fakes.serve import serve

USER = [{"role": "user", "content": "say hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
    for name in ("get_weather", "get_time")
]


@pytest.fixture
def state() -> OpenAIUpstreamState:
    return OpenAIUpstreamState(slow_first_delay=1.0)


@pytest.fixture
def url(state: OpenAIUpstreamState) -> Iterator[str]:
    app, _ = create_openai_upstream(state)
    with serve(app) as base:
        yield f"{base}/v1"


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client


def chat(client: httpx.Client, model: str, **body: Any) -> httpx.Response:
    return client.post("/chat/completions", json={"model": model, "messages": USER, **body})


def stream(client: httpx.Client, model: str, **body: Any) -> list[dict[str, Any]]:
    """The chunks of a streamed completion, checking the SSE framing on the way."""
    payload = {"model": model, "messages": USER, "stream": True, **body}
    with client.stream("POST", "/chat/completions", json=payload) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_models_health_and_auth(url: str, state: OpenAIUpstreamState) -> None:
    assert httpx.get(url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
    models = httpx.get(f"{url}/models").json()
    assert models["object"] == "list"
    assert {"gpt-test", "tool-model", "embed-test"} <= {m["id"] for m in models["data"]}
    state.api_key = "sk-fake"
    denied = httpx.post(f"{url}/chat/completions", json={"model": "gpt-test", "messages": USER})
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key"
    auth = {"Authorization": "Bearer sk-fake"}
    assert httpx.get(f"{url}/models", headers=auth).status_code == 200
    assert state.headers[-1]["content-type"] == "application/json"


def test_non_stream_completion(client: httpx.Client, state: OpenAIUpstreamState) -> None:
    body = chat(client, "gpt-test", n=2).json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["choices"][0]["message"] == {"role": "assistant", "content": GREETING}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 10, "total_tokens": 12}
    assert state.requests[-1]["n"] == 2

    echo = [{"role": "user", "content": [{"type": "text", "text": "echo: one two three"}]}]
    cut = chat(client, "gpt-test", messages=echo, max_tokens=2).json()["choices"][0]
    assert cut["message"]["content"] == "one two"
    assert cut["finish_reason"] == "length"


def test_stream_with_usage(client: httpx.Client, state: OpenAIUpstreamState) -> None:
    chunks = stream(client, "gpt-test", stream_options={"include_usage": True})
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-2])
    assert text == GREETING
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    assert "usage" not in stream(client, "gpt-test")[-1]
    assert state.stream_finished == 2


def test_streamed_parallel_tool_calls(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "weather and time in parallel"}]
    chunks = stream(client, "tool-model", messages=messages, tools=TOOLS)
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["content"] is None
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks[:-1]:
        for call in chunk["choices"][0]["delta"]["tool_calls"]:
            if "id" in call:
                assert call["function"]["arguments"] == ""
                calls[call["index"]] = {"name": call["function"]["name"], "arguments": ""}
            else:
                assert set(call) == {"index", "function"}
                calls[call["index"]]["arguments"] += call["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert all(json.loads(c["arguments"]) == {"city": "Paris", "days": 2} for c in calls.values())

    message = chat(client, "tool-model", tools=TOOLS).json()["choices"][0]["message"]
    assert message["content"] is None
    assert len(message["tool_calls"]) == 1
    answered = [*USER, message, {"role": "tool", "tool_call_id": "x", "content": "sunny"}]
    reply = chat(client, "tool-model", messages=answered, tools=TOOLS).json()["choices"][0]
    assert reply["message"]["content"] == "Tool said: sunny"
    assert reply["finish_reason"] == "stop"


def test_error_scenarios(client: httpx.Client, state: OpenAIUpstreamState) -> None:
    missing = chat(client, "nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "The model `nope` does not exist"
    assert chat(client, "error-500").json()["error"]["type"] == "server_error"
    limited = chat(client, "rate-limited", stream=True)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert chat(client, "bad-request").json()["error"]["param"] == "messages"
    assert [chat(client, "flaky").status_code for _ in range(3)] == [500, 500, 200]
    assert len(state.requests) == 7


def test_embeddings(client: httpx.Client) -> None:
    floats = client.post("/embeddings", json={"model": "embed-test", "input": ["a", "b c"]}).json()
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    vectors = [d["embedding"] for d in floats["data"]]
    assert all(len(v) == 8 and math.isclose(math.hypot(*v), 1) for v in vectors)
    assert vectors[0] != vectors[1]
    body = {"model": "embed-test", "input": "a", "encoding_format": "base64", "dimensions": 4}
    packed = client.post("/embeddings", json=body).json()["data"][0]["embedding"]
    assert len(struct.unpack("<4f", base64.b64decode(packed))) == 4
    again = client.post("/embeddings", json={"model": "embed-test", "input": "a"}).json()
    assert again["data"][0]["embedding"] == vectors[0]
    assert client.post("/embeddings", json={"model": "nope", "input": "a"}).status_code == 404


def test_slow_first_sends_headers_at_once(client: httpx.Client) -> None:
    started = time.monotonic()
    payload = {"model": "slow-first", "messages": USER, "stream": True}
    with client.stream("POST", "/chat/completions", json=payload) as response:
        assert time.monotonic() - started < 0.7  # the body waits 1 s
        response.read()
    assert time.monotonic() - started >= 1.0


def test_cut_drops_the_connection_mid_body(client: httpx.Client) -> None:
    lines: list[str] = []

    def read() -> None:
        payload = {"model": "cut", "messages": USER, "stream": True}
        with client.stream("POST", "/chat/completions", json=payload) as response:
            lines.extend(line for line in response.iter_lines() if line)

    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        read()
    assert len(lines) == 3


async def test_cut_is_a_payload_error_for_aiohttp(url: str) -> None:
    payload = {"model": "cut", "messages": USER, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/chat/completions", json=payload) as response,
    ):
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError, match="not completed"):
            await response.read()


def test_client_disconnect_closes_the_stream(
    client: httpx.Client, state: OpenAIUpstreamState
) -> None:
    payload = {"model": "slow-stream", "messages": USER, "stream": True}
    with client.stream("POST", "/chat/completions", json=payload) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    assert state.closed_early_event.wait(5)
    assert (state.stream_closed_early, state.stream_finished) == (1, 0)
