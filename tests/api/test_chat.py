"""POST /v1/chat/completions driven by the official `openai` SDK and raw httpx."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.api.sse import sse_events
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


def client(url: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, **kwargs)


# --- the happy path ---------------------------------------------------------------------------


def test_non_stream_with_the_sdk(gateway: str, upstream: OpenAIUpstreamState) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="openai/gpt-test", messages=USER
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"]
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "openai/gpt-test"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == GREETING
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    sent = upstream.requests[-1]
    assert sent["model"] == "gpt-test"
    assert upstream.headers[-1]["authorization"] == "Bearer upstream-key"


async def test_stream_with_the_async_sdk(gateway: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="openai/gpt-test",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == GREETING
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_stream_wire_format(gateway: str) -> None:
    body = {
        "model": "openai/gpt-test",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    resp, events = sse_events(gateway, body)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]) == 1


def test_stream_without_usage_has_no_usage_chunk(gateway: str) -> None:
    _, events = sse_events(gateway, {"model": "openai/gpt-test", "messages": USER, "stream": True})
    chunks = events[:-1]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_bare_model_id_resolves_through_the_model_list(gateway: str) -> None:
    completion = client(gateway).chat.completions.create(model="gpt-test", messages=USER)
    assert completion.model == "openai/gpt-test"


def test_empty_model_uses_default_model(make_gateway: MakeGateway) -> None:
    url = make_gateway(default_model="openai/gpt-test")
    resp = httpx.post(f"{url}/v1/chat/completions", json={"model": "", "messages": USER})
    assert resp.status_code == 200
    assert resp.json()["model"] == "openai/gpt-test"


def test_routes_answer_without_the_v1_prefix(gateway: str) -> None:
    resp = httpx.post(f"{gateway}/chat/completions", json={"model": "gpt-test", "messages": USER})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == GREETING


def test_persona_is_merged_into_the_system_prompt(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Speak like a pirate."},
        *USER,
    ]
    client(gateway).chat.completions.create(model="openai/gpt-test", messages=messages)
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].startswith("You are a helpful")
    assert sent[0]["content"].endswith("Speak like a pirate.")


# --- lenient input ----------------------------------------------------------------------------


def test_lenient_input_is_accepted_and_normalised(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    body = {
        "model": "openai/gpt-test",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
                "name": None,
            }
        ],
        "user": {"id": "u-42", "name": "Ada"},
        "max_completion_tokens": 50,
        "stop": "END",
        "temperature": None,
        "some_future_field": {"x": 1},
        "tools": None,
        "stream": None,
    }
    resp = httpx.post(f"{gateway}/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    sent = upstream.requests[-1]
    assert sent["user"] == "u-42"
    assert sent["stop"] == "END"
    assert sent["some_future_field"] == {"x": 1}
    assert "temperature" not in sent
    assert "tools" not in sent
    body.update(stop=["A", "B"], user="plain-user", max_tokens=10)
    assert httpx.post(f"{gateway}/v1/chat/completions", json=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-test"}, "messages"),
        ({"model": "gpt-test", "messages": []}, "messages"),
        ({"model": "gpt-test", "messages": "hello"}, "messages"),
        ({"model": "gpt-test", "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-test", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "gpt-test", "messages": USER, "max_tokens": -1}, "max_tokens"),
        ({"model": "gpt-test", "messages": USER, "stop": 5}, "stop"),
        (
            {"model": "gpt-test", "messages": USER, "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        (
            {"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content",
        ),
        (
            {"model": "gpt-test", "messages": USER, "tools": [{"type": "function"}]},
            "tools[0].function",
        ),
        (
            {"model": "gpt-test", "messages": USER, "tools": [{"type": "custom"}]},
            "tools[0].custom",
        ),
    ],
)
def test_bad_requests_get_400_in_openai_shape(
    gateway: str, body: dict[str, Any], param: str
) -> None:
    resp = httpx.post(f"{gateway}/v1/chat/completions", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_a_message_without_content_is_400(gateway: str) -> None:
    for message, param in (
        ({"role": "user"}, "messages[0]"),
        ({"role": "assistant", "content": None}, "messages[0]"),
    ):
        body = {"model": "gpt-test", "messages": [message]}
        resp = httpx.post(f"{gateway}/v1/chat/completions", json=body)
        assert resp.status_code == 400
        assert resp.json()["error"]["param"] == param


def test_tool_call_arguments_sent_as_an_object_are_forwarded_as_a_json_string(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    body = {"model": "openai/gpt-test", "messages": messages}
    assert httpx.post(f"{gateway}/v1/chat/completions", json=body).status_code == 200
    forwarded = upstream.requests[-1]["messages"][-2]["tool_calls"][0]["function"]
    assert forwarded["arguments"] == '{"a":1}'


def test_wrong_method_is_405_in_openai_shape(gateway: str) -> None:
    resp = httpx.get(f"{gateway}/v1/chat/completions")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    assert resp.json()["error"]["code"] == "method_not_allowed"
    resp = httpx.get(f"{gateway}/v1/no/such/route")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_unparseable_bodies_get_400(gateway: str, raw: bytes) -> None:
    resp = httpx.post(
        f"{gateway}/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_sdk_raises_bad_request_for_invalid_role(gateway: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(
            model="gpt-test",
            messages=[{"role": "robot", "content": "x"}],  # type: ignore[misc,list-item]
        )
    assert info.value.status_code == 400


def test_n_above_one_where_the_provider_cannot(
    make_gateway: MakeGateway, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    url, _ = openai_server
    gw = make_gateway(llamacpp_base_url=url)
    body = {"model": "llamacpp/gpt-test", "messages": USER, "n": 2}
    resp = httpx.post(f"{gw}/v1/chat/completions", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "n"
    body["model"] = "openai/gpt-test"
    resp = httpx.post(f"{gw}/v1/chat/completions", json=body)
    assert resp.status_code == 200
    assert [c["index"] for c in resp.json()["choices"]] == [0, 1]


# --- client tools pass through -----------------------------------------------------------------


def test_client_tools_stream_back_as_tool_calls(gateway: str) -> None:
    body = {
        "model": "openai/tool-model",
        "messages": [{"role": "user", "content": "weather and time, parallel please"}],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "stream": True,
    }
    _, events = sse_events(gateway, body)
    deltas = [c["choices"][0]["delta"] for c in events[:-1] if c["choices"]]
    calls = [call for d in deltas for call in d.get("tool_calls") or []]
    assert all("index" in call for call in calls)
    firsts: dict[int, Any] = {}
    for call in calls:
        firsts.setdefault(call["index"], call)
    assert set(firsts) == {0, 1}
    for call in firsts.values():
        assert call["id"]
        assert call["type"] == "function"
        assert call["function"]["name"]
    args = {
        i: "".join(c["function"].get("arguments", "") for c in calls if c["index"] == i)
        for i in firsts
    }
    assert json.loads(args[0]) == {"city": "Paris"}
    assert json.loads(args[1]) == {"zone": "Paris"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_openwebui_two_turn_native_tool_exchange(gateway: str) -> None:
    sdk = client(gateway)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What's the weather in Paris?"}
    ]
    stream = sdk.chat.completions.create(
        model="openai/tool-model",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,
    )
    call_id, name, arguments, finish = "", "", "", None
    for chunk in stream:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            call_id = call.id or call_id
            name = (call.function and call.function.name) or name
            arguments += (call.function and call.function.arguments) or ""
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18 C and sunny"},
    ]
    answer = sdk.chat.completions.create(
        model="openai/tool-model", messages=messages, tools=[WEATHER_TOOL]
    )
    assert answer.choices[0].message.content == "Tool said: 18 C and sunny"
    assert answer.choices[0].finish_reason == "stop"


def test_non_stream_tool_calls(gateway: str) -> None:
    completion = client(gateway).chat.completions.create(
        model="openai/tool-model",
        messages=USER,
        tools=[WEATHER_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


# --- errors ------------------------------------------------------------------------------------


def test_unknown_model_is_404(gateway: str) -> None:
    for model in ("openai/no-such-model", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as info:
            client(gateway).chat.completions.create(model=model, messages=USER)
        assert info.value.code == "model_not_found"


def test_upstream_429_becomes_429_with_retry_after(gateway: str) -> None:
    resp = httpx.post(
        f"{gateway}/v1/chat/completions", json={"model": "openai/rate-limited", "messages": USER}
    )
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1"
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"


def test_upstream_500_becomes_502_naming_the_provider(gateway: str) -> None:
    resp = httpx.post(
        f"{gateway}/v1/chat/completions", json={"model": "openai/error-500", "messages": USER}
    )
    assert resp.status_code == 502
    assert resp.json()["error"]["message"].startswith("openai:")


def test_upstream_400_stays_400(gateway: str) -> None:
    resp = httpx.post(
        f"{gateway}/v1/chat/completions", json={"model": "openai/bad-request", "messages": USER}
    )
    assert resp.status_code == 400
    assert "fake upstream rejects" in resp.json()["error"]["message"]


def test_upstream_down_is_503_naming_the_provider(make_gateway: MakeGateway) -> None:
    url = make_gateway(openai_base_url="http://127.0.0.1:9/v1")
    resp = httpx.post(f"{url}/v1/chat/completions", json={"model": "openai/x", "messages": USER})
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "provider_unavailable"
    assert "openai" in resp.json()["error"]["message"]


def test_slow_first_token_is_504(make_gateway: MakeGateway, upstream: OpenAIUpstreamState) -> None:
    upstream.slow_first_delay = 1.5
    url = make_gateway(request_timeout=0.3, retry_attempts=1)
    for stream in (False, True):
        body = {"model": "openai/slow-first", "messages": USER, "stream": stream}
        resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
        assert resp.status_code == 504
        assert resp.json()["error"]["code"] == "upstream_timeout"


def test_stream_cut_mid_answer_ends_with_an_in_band_error(gateway: str) -> None:
    _, events = sse_events(gateway, {"model": "openai/cut", "messages": USER, "stream": True})
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "upstream_error"
    # what OpenWebUI shows in its error box: the provider, in plain words, no transport jargon
    message = events[-2]["error"]["message"]
    assert message == "openai: the connection closed before the answer was complete"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-2]) == "Hello from"
    with pytest.raises(openai.APIError):
        for _ in client(gateway).chat.completions.create(
            model="openai/cut",
            messages=USER,
            stream=True,
        ):
            pass


def test_stalled_stream_ends_with_an_in_band_timeout(make_gateway: MakeGateway) -> None:
    url = make_gateway(request_timeout=0.5)
    started = time.monotonic()
    _, events = sse_events(url, {"model": "openai/stall", "messages": USER, "stream": True})
    assert time.monotonic() - started < 10
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "upstream_timeout"
    assert (
        events[-2]["error"]["message"] == "openai: stopped answering (no data within the timeout)"
    )


def test_total_timeout_caps_a_long_plain_answer(make_gateway: MakeGateway) -> None:
    """A non-streamed answer is read whole before it is sent: TOTAL_TIMEOUT still bounds it,
    and an answer that long is not asked for again."""
    url = make_gateway(request_timeout=1.0, total_timeout=0.5, retry_attempts=3)
    started = time.monotonic()
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai/slow-stream", "messages": USER},
        timeout=30,
    )
    assert time.monotonic() - started < 3
    assert resp.status_code == 504
    assert resp.json()["error"]["message"] == "openai: the answer exceeded TOTAL_TIMEOUT (0.5s)"


def test_total_timeout_caps_a_long_answer(make_gateway: MakeGateway) -> None:
    url = make_gateway(request_timeout=1.0, total_timeout=0.5)
    _, events = sse_events(url, {"model": "openai/slow-stream", "messages": USER, "stream": True})
    assert events[-2]["error"]["code"] == "upstream_timeout"
    assert "TOTAL_TIMEOUT" in events[-2]["error"]["message"]


def test_a_slow_long_answer_is_not_cut_by_request_timeout(make_gateway: MakeGateway) -> None:
    url = make_gateway(request_timeout=0.5)
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai/slow-stream", "messages": USER},
        timeout=30,
    )
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["finish_reason"] == "stop"


async def test_client_disconnect_cancels_the_upstream_request(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    body = {"model": "openai/slow-stream", "messages": USER, "stream": True}
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream("POST", f"{gateway}/v1/chat/completions", json=body) as resp,
    ):
        lines = resp.aiter_lines()
        while not (await anext(lines)).startswith("data: "):
            pass
    assert await asyncio.to_thread(upstream.closed_early_event.wait, 5)
    assert upstream.stream_finished == 0


async def test_client_leaving_a_non_stream_request_cancels_the_upstream_request(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    body = {"model": "openai/slow-stream", "messages": USER}
    async with httpx.AsyncClient(timeout=0.5) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{gateway}/v1/chat/completions", json=body)
    assert await asyncio.to_thread(upstream.closed_early_event.wait, 5)
    assert upstream.stream_finished == 0


# --- fallback, retries, circuit breaker ---------------------------------------------------------


def test_fallback_moves_down_the_chain(make_gateway: MakeGateway) -> None:
    url = make_gateway(fallback_models=["openai/gpt-test"])
    for model in ("openai/error-500", "openai/rate-limited"):
        completion = client(url).chat.completions.create(model=model, messages=USER)
        assert completion.model == "openai/gpt-test"
        assert completion.choices[0].message.content == GREETING


def test_retry_with_backoff_mends_a_flaky_upstream(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(retry_attempts=3)
    completion = client(url).chat.completions.create(model="openai/flaky", messages=USER)
    assert completion.choices[0].message.content == GREETING
    assert len(upstream.requests) == 3


def test_circuit_breaker_opens_and_lets_a_probe_through(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(retry_attempts=1, breaker_failures=2, breaker_reset=0.5)

    def post(model: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/chat/completions", json={"model": model, "messages": USER})

    assert post("openai/error-500").status_code == 502
    assert post("openai/error-500").status_code == 502
    seen = len(upstream.requests)
    resp = post("openai/error-500")
    assert resp.status_code == 503
    assert "circuit openai/error-500 open" in resp.json()["error"]["message"]
    assert resp.headers["retry-after"] == "1"
    assert len(upstream.requests) == seen
    assert post("openai/gpt-test").status_code == 200  # the provider's other models answer
    time.sleep(0.6)
    assert post("openai/error-500").status_code == 502  # the probe went through, and failed
    assert len(upstream.requests) == seen + 2
    assert post("openai/error-500").status_code == 503
    health = httpx.get(f"{url}/health").json()
    assert health["providers"]["openai"]["circuit"] == "closed"
    assert health["providers"]["openai"]["model_circuits"] == {"error-500": "open"}


# --- request ids -------------------------------------------------------------------------------


def traced(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "request_id", "-") == request_id]


def test_request_id_is_echoed_or_generated_and_logged(
    gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    resp = httpx.post(
        f"{gateway}/v1/chat/completions",
        json={"model": "openai/error-500", "messages": USER},
        headers={"X-Request-ID": "trace-abc-123"},
    )
    assert resp.headers["x-request-id"] == "trace-abc-123"
    deadline = time.monotonic() + 10  # the access line is written once the response is sent
    while not any(r.name == "app.access" for r in traced(caplog, "trace-abc-123")):
        assert time.monotonic() < deadline, "no access line for the request"
        time.sleep(0.02)
    assert any("error-500" in r.getMessage() for r in traced(caplog, "trace-abc-123"))
    generated = httpx.get(f"{gateway}/v1/models").headers["x-request-id"]
    assert len(generated) == 32


def test_the_chat_route_is_in_the_openapi_schema(gateway: str) -> None:
    schema = httpx.get(f"{gateway}/openapi.json").json()
    operation = schema["paths"]["/v1/chat/completions"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert "messages" in request["required"]
    assert "Message" in schema["components"]["schemas"]
    assert "/v1/models" in schema["paths"]
