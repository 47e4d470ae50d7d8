"""The Anthropic Messages request read into the chat-completions body, and its 400s."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.schemas import validate
from app.api.wire.anthropic_request import (
    Decoded,
    MessagesRequest,
    TokenCountRequest,
    conversation,
    decode,
)
from app.errors import InvalidRequest

USER = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    """A request's fields with one user message of `blocks`."""
    return {"messages": [{"role": "user", "content": list(blocks)}]}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "assistant", "content": list(blocks)}]}


def image(source: dict[str, Any]) -> dict[str, Any]:
    return {"type": "image", "source": source}


def call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def decoded(**fields: Any) -> Decoded:
    body = {"model": "openai/gpt-test", "max_tokens": 64, "messages": USER, **fields}
    return decode(validate(MessagesRequest, body))


def chat(**fields: Any) -> dict[str, Any]:
    return decoded(**fields).body


def test_a_plain_request() -> None:
    assert chat() == {
        "model": "openai/gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 64,
    }
    assert decoded().stream is False
    assert decoded().thinking is False


def test_sampling_stop_user_format_and_stream_carry_over_top_k_and_effort_are_dropped() -> None:
    got = decoded(
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END", "\n\n"],
        metadata={"user_id": "u-1"},
        output_config={"effort": "high", "format": {"type": "json_schema", "schema": SCHEMA}},
        stream=True,
    )
    assert got.body == {
        "model": "openai/gpt-test",
        "messages": USER,
        "max_tokens": 64,
        "stop": ["END", "\n\n"],
        "temperature": 0.5,
        "top_p": 0.9,
        "user": "u-1",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": SCHEMA},
        },
        "stream": True,
    }
    assert got.stream is True


@pytest.mark.parametrize(
    "system",
    [
        "Be brief.\n\nBe kind.",
        [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}},
        ],
    ],
)
def test_the_system_prompt_is_the_first_message(system: str | list[dict[str, Any]]) -> None:
    assert chat(system=system)["messages"][0] == {
        "role": "system",
        "content": "Be brief.\n\nBe kind.",
    }


def test_blocks_become_content_parts_and_a_lone_text_block_plain_content() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "one"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "two"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                image({"type": "base64", "media_type": "image/png", "data": "AAA="}),
                image({"type": "url", "url": "https://example.org/a.jpg"}),
            ],
        },
    ]
    assert chat(messages=messages)["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}},
                {"type": "image_url", "image_url": {"url": "https://example.org/a.jpg"}},
            ],
        },
    ]


def test_a_tool_round_trip() -> None:
    messages = [
        {"role": "user", "content": "weather and time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                call("toolu_1", "get_weather", {"city": "Paris"}),
                call("toolu_2", "get_time", {}),
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no clock"}],
                    "is_error": True,
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert chat(messages=messages, tools=[WEATHER, TIME])["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no clock"},
        {"role": "user", "content": "thanks"},
    ]


def test_an_assistant_of_only_calls_has_no_content_and_results_alone_no_user_message() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [call("t1", "get_weather", {})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    out = chat(messages=messages, tools=[WEATHER])["messages"]
    assert out[1]["content"] is None
    assert out[2:] == [{"role": "tool", "tool_call_id": "t1", "content": ""}]


def test_a_tool_results_images_follow_the_tool_messages() -> None:
    shot = image({"type": "url", "url": "https://example.org/shot.png"})
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "text", "text": "shot"}, shot],
    }
    out = chat(messages=[{"role": "user", "content": [result]}])["messages"]
    assert out == [
        {"role": "tool", "tool_call_id": "t1", "content": "shot"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://example.org/shot.png"}}
            ],
        },
    ]


def test_thinking_blocks_of_the_client_are_dropped_and_thinking_is_noted() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
    ]
    got = decoded(messages=messages, thinking={"type": "enabled", "budget_tokens": 2048})
    assert got.body["messages"][1] == {"role": "assistant", "content": ""}
    assert got.thinking is True
    assert decoded(thinking={"type": "disabled"}).thinking is False


def test_tools_and_tool_choice() -> None:
    body = chat(tools=[WEATHER, TIME], tool_choice={"type": "any"})
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": WEATHER["input_schema"],
            "description": "Current weather",
        },
    }
    assert body["tools"][1] == {
        "type": "function",
        "function": {"name": "get_time", "parameters": TIME["input_schema"]},
    }
    assert body["tool_choice"] == "required"
    assert "parallel_tool_calls" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
            {
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
                "parallel_tool_calls": False,
            },
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
    ],
)
def test_each_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    body = chat(tools=[WEATHER, TIME], tool_choice=choice)
    assert {k: v for k, v in body.items() if k in ("tool_choice", "parallel_tool_calls")} == (
        expected
    )


def test_a_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in chat(tool_choice={"type": "auto"})


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"max_tokens": None}, "max_tokens", "'max_tokens' is a required property"),
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "Invalid"),
        ({"temperature": 1.5}, "temperature", "less than or equal to 1"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice", "needs the tool's 'name'"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools[0].type",
            "'web_search_20250305'",
        ),
        ({"tools": [{"type": "bash_20250124", "name": "b"}]}, "tools[0].type", "'bash_20250124'"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema", "required"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}},
            "tool_choice.name",
            "'nope'",
        ),
        ({"system": [{"type": "image"}]}, "system[0]", "text block"),
        (user({"type": "document"}), "messages[0].content[0].type", "'document'"),
        (user({"text": "no type"}), "messages[0].content[0].type", "string 'type'"),
        (user({"type": "text"}), "messages[0].content[0].text", "string 'text'"),
        (user(image({"type": "file", "file_id": "f"})), "messages[0].content[0].source", "url"),
        (assistant(call("t", "f", [1])), "messages[0].content[0].input", "object"),
        (assistant(call("", "f", {})), "messages[0].content[0].id", "'id'"),
        (assistant(image({})), "messages[0].content[0].type", "'image'"),
        (
            user({"type": "tool_result", "content": "x"}),
            "messages[0].content[0].tool_use_id",
            "tool_use_id",
        ),
        (
            user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}),
            "messages[0].content[0].content[0].type",
            "'document'",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    fields: dict[str, Any], param: str, words: str
) -> None:
    body = {"model": "openai/gpt-test", "max_tokens": 64, "messages": USER, **fields}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(InvalidRequest) as info:
        decode(validate(MessagesRequest, body))
    assert info.value.param == param
    assert words in info.value.message
    assert info.value.status == 400


def test_count_tokens_reads_the_conversation_without_max_tokens() -> None:
    req = validate(
        TokenCountRequest,
        {"model": "m", "system": "s", "messages": USER, "tools": [TIME], "max_tokens": 5},
    )
    body = conversation(req)
    assert body["messages"] == [{"role": "system", "content": "s"}, *USER]
    assert body["tools"][0]["function"]["name"] == "get_time"
    assert "max_tokens" not in body
