"""The real `anthropic` SDK against a real gateway on loopback: Claude-style clients use any
model behind the gateway through /v1/messages."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam, OutputConfigParam, TextBlock, ToolParam, ToolUseBlock

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

MODEL = "openai/gpt-test"
USER: list[MessageParam] = [{"role": "user", "content": "hi"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def client(url: str, api_key: str = "unused", **kwargs: Any) -> anthropic.Anthropic:
    """The SDK appends /v1/messages to the base URL itself."""
    return anthropic.Anthropic(base_url=url, api_key=api_key, max_retries=0, **kwargs)


def text_of(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def test_create(gateway: str, upstream: OpenAIUpstreamState) -> None:
    with client(gateway) as sdk:
        message = sdk.messages.create(
            model=MODEL,
            max_tokens=256,
            system="Answer like a pirate.",
            stop_sequences=["Arr"],
            metadata={"user_id": "pirate-1"},
            messages=USER,
        )
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert message.role == "assistant"
    assert text_of(message) == GREETING
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 5
    assert message.usage.input_tokens > 0
    sent = upstream.requests[-1]
    assert sent["messages"][0]["role"] == "system"
    assert "Answer like a pirate." in sent["messages"][0]["content"]
    assert sent["stop"] == ["Arr"]
    assert sent["user"] == "pirate-1"
    assert sent["max_tokens"] == 256


def test_raw_stream_events(gateway: str) -> None:
    with client(gateway) as sdk:
        stream = sdk.messages.create(model=MODEL, max_tokens=256, messages=USER, stream=True)
        kinds = [event.type for event in stream]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == 5


def test_the_stream_helper(gateway: str) -> None:
    with (
        client(gateway) as sdk,
        sdk.messages.stream(model=MODEL, max_tokens=256, messages=USER) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == GREETING
    assert text_of(final) == GREETING
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5


async def test_the_async_client(gateway: str) -> None:
    async with anthropic.AsyncAnthropic(base_url=gateway, api_key="k", max_retries=0) as sdk:
        message = await sdk.messages.create(model=MODEL, max_tokens=256, messages=USER)
        async with sdk.messages.stream(model=MODEL, max_tokens=256, messages=USER) as stream:
            pieces = [piece async for piece in stream.text_stream]
            final = await stream.get_final_message()
    assert text_of(message) == GREETING
    assert "".join(pieces) == GREETING
    assert len(pieces) == 5
    assert text_of(final) == GREETING


def test_a_tool_round_trip(gateway: str, upstream: OpenAIUpstreamState) -> None:
    model = "openai/tool-model"
    with client(gateway) as sdk:
        asked = sdk.messages.create(model=model, max_tokens=256, messages=USER, tools=[WEATHER])
        assert asked.stop_reason == "tool_use"
        [use] = asked.content
        assert isinstance(use, ToolUseBlock)
        assert use.name == "get_weather"
        assert use.input == {"city": "Paris"}
        with sdk.messages.stream(
            model=model, max_tokens=256, messages=USER, tools=[WEATHER]
        ) as stream:
            streamed = stream.get_final_message()
        assert isinstance(streamed.content[0], ToolUseBlock)
        assert streamed.content[0].input == {"city": "Paris"}
        history: list[MessageParam] = [
            *USER,
            {"role": "assistant", "content": asked.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ]
        final = sdk.messages.create(model=model, max_tokens=256, messages=history, tools=[WEATHER])
    assert text_of(final) == "Tool said: sunny"
    assert final.stop_reason == "end_turn"
    assert upstream.requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": use.id,
        "content": "sunny",
    }


def test_a_json_schema_output_format_reaches_the_upstream(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    schema: dict[str, object] = {"type": "object", "properties": {"answer": {"type": "string"}}}
    output: OutputConfigParam = {"format": {"type": "json_schema", "schema": schema}}
    with client(gateway) as sdk:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=USER, output_config=output)
    assert upstream.requests[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_count_tokens(gateway: str) -> None:
    with client(gateway) as sdk:
        plain = sdk.messages.count_tokens(model=MODEL, messages=USER).input_tokens
        with_tools = sdk.messages.count_tokens(model=MODEL, messages=USER, tools=[WEATHER])
    assert plain > 0
    assert with_tools.input_tokens > plain


def test_keys_as_the_sdk_sends_them(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k1"])
    with client(url, api_key="k1") as sdk:
        assert text_of(sdk.messages.create(model=MODEL, max_tokens=64, messages=USER))
    with anthropic.Anthropic(
        base_url=url, api_key=None, default_headers={"x-api-key": "k1"}, max_retries=0
    ) as sdk:
        assert text_of(sdk.messages.create(model=MODEL, max_tokens=64, messages=USER))
    with client(url, api_key="nope") as sdk, pytest.raises(anthropic.AuthenticationError) as info:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert info.value.status_code == 401
    assert info.value.type == "authentication_error"
    assert info.value.api_message == "Invalid API key."


def test_errors_raise_the_sdks_exceptions(gateway: str) -> None:
    with client(gateway) as sdk:
        with pytest.raises(anthropic.NotFoundError) as missing:
            sdk.messages.create(model="openai/nope", max_tokens=64, messages=USER)
        assert missing.value.type == "not_found_error"
        assert "nope" in (missing.value.api_message or "")
        with pytest.raises(anthropic.BadRequestError) as bad:
            sdk.messages.create(model=MODEL, max_tokens=0, messages=USER)
        assert bad.value.type == "invalid_request_error"
        assert "max_tokens" in (bad.value.api_message or "")
        with pytest.raises(anthropic.BadRequestError) as server_tool:
            sdk.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=USER,
                tools=[{"type": "web_search_20250305", "name": "web_search"}],
            )
        assert "web_search_20250305" in (server_tool.value.api_message or "")


def test_a_failure_mid_stream_raises(gateway: str) -> None:
    texts: list[str] = []
    with (
        client(gateway) as sdk,
        pytest.raises(anthropic.APIStatusError) as info,
        sdk.messages.stream(model="openai/cut", max_tokens=64, messages=USER) as stream,
    ):
        texts.extend(stream.text_stream)
    assert "".join(texts) == "Hello from"
    assert info.value.type == "api_error"
    assert "closed before the answer was complete" in (info.value.api_message or "")
