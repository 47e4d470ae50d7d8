"""POST /v1/messages and /v1/messages/count_tokens over HTTP (raw httpx): the message and its
event stream, the request reaching the upstream as a chat request, every refusal in Anthropic's
error shape (those of the middleware too), and the other routes left in OpenAI's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

USER = [{"role": "user", "content": "hi"}]
BODY: dict[str, Any] = {"model": "openai/gpt-test", "max_tokens": 256, "messages": USER}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-04-04"}


def post(url: str, body: dict[str, Any], path: str = "/v1/messages", **headers: str) -> Any:
    return httpx.post(f"{url}{path}", json=body, headers={**HEADERS, **headers}, timeout=30)


def events(url: str, body: dict[str, Any], **headers: str) -> list[tuple[str, Any]]:
    """The (event name, data) pairs of a streamed answer, each name checked against its data."""
    out: list[tuple[str, Any]] = []
    with httpx.stream(
        "POST", f"{url}/v1/messages", json={**body, "stream": True}, headers=headers, timeout=30
    ) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines: Iterator[str] = resp.iter_lines()
        for line in lines:
            if line.startswith("event: "):
                data = json.loads(next(lines).removeprefix("data: "))
                assert data["type"] == line[7:]
                out.append((line[7:], data))
    return out


def assert_error(resp: httpx.Response, status: int, kind: str) -> str:
    """The message of an error in Anthropic's shape, `kind` with `status`."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"type", "error"}
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    message: str = body["error"]["message"]
    assert message
    return message


# --- the message ------------------------------------------------------------------------------


def test_a_message(gateway: str, upstream: OpenAIUpstreamState) -> None:
    resp = post(gateway, {**BODY, "system": "Be brief.", "stop_sequences": ["END"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"].startswith("msg_")
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == "openai/gpt-test"
    assert body["content"] == [{"type": "text", "text": GREETING}]
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert body["usage"]["output_tokens"] == 5
    assert body["usage"]["input_tokens"] > 0
    assert body["usage"]["cache_read_input_tokens"] == 0
    sent = upstream.requests[-1]
    assert sent["model"] == "gpt-test"
    assert sent["max_tokens"] == 256
    assert sent["stop"] == ["END"]
    assert sent["messages"][0]["role"] == "system"
    assert "Be brief." in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "hi"}


def test_max_tokens_reached_is_max_tokens(gateway: str) -> None:
    body = post(gateway, {**BODY, "max_tokens": 2}).json()
    assert body["content"] == [{"type": "text", "text": "Hello from"}]
    assert body["stop_reason"] == "max_tokens"


def test_the_stream_is_in_anthropics_order(gateway: str) -> None:
    got = events(gateway, BODY, **HEADERS)
    assert [name for name, _ in got] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = got[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] > 0
    text = "".join(data["delta"]["text"] for name, data in got if name == "content_block_delta")
    assert text == GREETING
    delta = got[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 5


def test_a_client_tool_call_and_its_result(gateway: str, upstream: OpenAIUpstreamState) -> None:
    ask = {**BODY, "model": "openai/tool-model", "tools": [WEATHER]}
    got = events(gateway, {**ask, "tool_choice": {"type": "any"}})
    assert [name for name, _ in got] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    block = got[1][1]["content_block"]
    assert block["type"] == "tool_use"
    assert block["name"] == "get_weather"
    assert block["input"] == {}
    partial = "".join(d["delta"]["partial_json"] for n, d in got if n == "content_block_delta")
    assert json.loads(partial) == {"city": "Paris"}
    assert got[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert upstream.requests[-1]["tool_choice"] == "required"
    assert upstream.requests[-1]["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]

    called = post(gateway, ask).json()
    assert called["stop_reason"] == "tool_use"
    [use] = called["content"]
    assert use["input"] == {"city": "Paris"}
    result = {"type": "tool_result", "tool_use_id": use["id"], "content": "18 degrees"}
    history = [
        *USER,
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]
    final = post(gateway, {**ask, "messages": history}).json()
    assert final["content"] == [{"type": "text", "text": "Tool said: 18 degrees"}]
    assert final["stop_reason"] == "end_turn"
    sent = upstream.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == use["id"]
    assert sent[-1] == {"role": "tool", "tool_call_id": use["id"], "content": "18 degrees"}


def test_the_gateways_own_tools_show_only_as_pings(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    got = events(url, {**BODY, "model": "openai/scripted"})
    assert [name for name, _ in got][:2] == ["message_start", "ping"]
    assert "calculator" not in json.dumps([data for name, data in got if name != "ping"])
    blocks = [data["content_block"] for name, data in got if name == "content_block_start"]
    assert blocks == [{"type": "text", "text": ""}]
    text = "".join(data["delta"]["text"] for name, data in got if name == "content_block_delta")
    assert text.startswith("Final: ")
    assert "42" in text
    whole = post(url, {**BODY, "model": "openai/scripted"}).json()
    assert whole["content"] == [{"type": "text", "text": text}]


def test_a_failure_mid_stream_is_an_error_event(gateway: str) -> None:
    got = events(gateway, {**BODY, "model": "openai/cut"})
    names = [name for name, _ in got]
    assert names[-1] == "error"
    assert "message_stop" not in names
    assert "message_delta" not in names
    error = got[-1][1]
    assert error["error"]["type"] == "api_error"
    assert "closed before the answer was complete" in error["error"]["message"]


# --- count_tokens -----------------------------------------------------------------------------


def test_count_tokens(gateway: str) -> None:
    def count(**fields: Any) -> int:
        body = {"model": "openai/gpt-test", "messages": USER, **fields}
        resp = post(gateway, body, "/v1/messages/count_tokens")
        assert resp.status_code == 200, resp.text
        assert set(resp.json()) == {"input_tokens"}
        tokens: int = resp.json()["input_tokens"]
        return tokens

    plain = count()
    assert plain > 0
    assert count(system="You answer in French. " * 20) > plain + 80
    assert count(tools=[WEATHER]) > plain + 10
    assert count(max_tokens=5) == plain
    streamed = events(gateway, BODY)[0][1]["message"]["usage"]["input_tokens"]
    assert streamed == plain


def test_count_tokens_for_a_model_no_provider_has_is_404(gateway: str) -> None:
    body = {"model": "nope", "messages": USER}
    assert_error(post(gateway, body, "/v1/messages/count_tokens"), 404, "not_found_error")


# --- errors in Anthropic's shape --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "openai/gpt-test", "messages": USER}, "'max_tokens' is a required property"),
        ({**BODY, "messages": [{"role": "user", "content": [{"type": "document"}]}]}, "document"),
        ({**BODY, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search"),
    ],
)
def test_bad_input_is_400(gateway: str, body: dict[str, Any], words: str) -> None:
    assert words in assert_error(post(gateway, body), 400, "invalid_request_error")


def test_a_body_that_is_not_json_is_400(gateway: str) -> None:
    resp = httpx.post(f"{gateway}/v1/messages", content=b"{nope", timeout=10)
    assert "not valid JSON" in assert_error(resp, 400, "invalid_request_error")


def test_an_unknown_model_is_404(gateway: str) -> None:
    message = assert_error(post(gateway, {**BODY, "model": "openai/nope"}), 404, "not_found_error")
    assert "nope" in message
    streamed = post(gateway, {**BODY, "model": "openai/nope", "stream": True})
    assert_error(streamed, 404, "not_found_error")


def test_an_upstream_failure_is_api_error(make_gateway: MakeGateway) -> None:
    url = make_gateway(retry_attempts=1)
    assert_error(post(url, {**BODY, "model": "openai/error-500"}), 502, "api_error")


def test_an_unreachable_provider_is_overloaded(make_gateway: MakeGateway) -> None:
    url = make_gateway(openai_base_url="http://127.0.0.1:9/v1")
    assert_error(post(url, BODY), 503, "overloaded_error")


def test_a_slow_first_token_is_a_timeout(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    upstream.slow_first_delay = 1.5
    url = make_gateway(request_timeout=0.3, retry_attempts=1)
    assert_error(post(url, {**BODY, "model": "openai/slow-first"}), 504, "timeout_error")


def test_a_wrong_method_or_path_is_in_anthropics_shape(gateway: str) -> None:
    resp = httpx.get(f"{gateway}/v1/messages", timeout=10)
    assert "use POST" in assert_error(resp, 405, "invalid_request_error")
    assert_error(post(gateway, BODY, "/v1/messages/batches"), 404, "not_found_error")


def test_a_body_over_the_limit_is_413(make_gateway: MakeGateway) -> None:
    url = make_gateway(max_request_bytes=1024)
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 4096}]}
    message = assert_error(post(url, big), 413, "request_too_large")
    assert "MAX_REQUEST_BYTES" in message
    raw = json.dumps(big).encode()
    chunked = httpx.post(f"{url}/v1/messages", content=iter([raw[:2000], raw[2000:]]), timeout=10)
    assert_error(chunked, 413, "request_too_large")


def test_the_other_routes_keep_openais_shape(make_gateway: MakeGateway) -> None:
    url = make_gateway(max_request_bytes=1024)
    resp = httpx.post(f"{url}/v1/chat/completions", json={"model": "openai/nope", "messages": USER})
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "model_not_found"
    big = httpx.post(f"{url}/v1/chat/completions", content=b"x" * 2048, timeout=10)
    assert big.json()["error"]["code"] == "request_too_large"
    assert httpx.post(f"{url}/v1/messagesx", json={}).json()["error"]["code"] == "not_found"


# --- keys and limits --------------------------------------------------------------------------


def test_keys_as_x_api_key_or_bearer(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k1"])
    missing = assert_error(post(url, BODY), 401, "authentication_error")
    assert "x-api-key" in missing
    wrong = assert_error(post(url, BODY, **{"x-api-key": "nope"}), 401, "authentication_error")
    assert wrong == "Invalid API key."
    assert post(url, BODY, **{"x-api-key": "k1"}).status_code == 200
    assert post(url, BODY, Authorization="Bearer k1").status_code == 200
    chat = {"model": "openai/gpt-test", "messages": USER}
    assert post(url, chat, "/v1/chat/completions", **{"x-api-key": "k1"}).status_code == 200
    refused = post(url, chat, "/v1/chat/completions", **{"x-api-key": "nope"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


def test_over_the_rate_limit_is_429_with_retry_after(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k1"], rate_limit_rpm=1)
    assert post(url, BODY, **{"x-api-key": "k1"}).status_code == 200
    resp = post(url, BODY, **{"x-api-key": "k1"})
    assert_error(resp, 429, "rate_limit_error")
    assert int(resp.headers["retry-after"]) >= 1


@pytest.mark.parametrize("stream", [False, True])
def test_an_answers_tokens_are_charged(make_gateway: MakeGateway, stream: bool) -> None:
    url = make_gateway(api_keys=["k1"], rate_limit_tpm=20)
    body = {**BODY, "messages": [{"role": "user", "content": "hi " * 30}], "stream": stream}
    assert post(url, body, **{"x-api-key": "k1"}).status_code == 200
    time.sleep(0.2)  # the charge is made just after the answer has been sent
    assert_error(post(url, body, **{"x-api-key": "k1"}), 429, "rate_limit_error")
