"""The Responses request decoder: fixed requests read as the chat body the engine takes, and every
kind of bad or unsupported input refused with a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.wire.responses_request import decode, normalise, to_messages
from app.errors import InvalidRequest

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def chat(body: dict[str, Any]) -> dict[str, Any]:
    decoded = decode(body)
    return decoded.chat_body(decoded.items)


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    body = chat(
        {
            "model": "openai/gpt-test",
            "input": "hi",
            "instructions": "Be brief.",
            "max_output_tokens": 7,
            "temperature": 0.5,
            "top_p": 0.9,
            "user": "u1",
            "metadata": {"k": "v"},
            "include": ["message.output_text.logprobs"],
            "truncation": "auto",
            "reasoning": {"effort": "low"},
            "service_tier": "auto",
            "safety_identifier": "ignored",
        }
    )
    assert body == {
        "model": "openai/gpt-test",
        "stream": False,
        "max_tokens": 7,
        "temperature": 0.5,
        "top_p": 0.9,
        "user": "u1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
    }


ONE, TWO = '{"a": 1}', '{"a":2}'


def test_items_become_chat_messages() -> None:
    items = [
        {"role": "developer", "content": "Use tools."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": '{"a": 1}'},
        {"type": "function_call", "call_id": "c2", "name": "look", "arguments": {"a": 2}},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "two"}],
        },
        {"type": "function_call", "call_id": "c3", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c3", "output": "three"},
        {"role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
    ]
    assert chat({"input": items})["messages"] == [
        {"role": "developer", "content": "Use tools."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "auto"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": ONE}},
                {"id": "c2", "type": "function", "function": {"name": "look", "arguments": TWO}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "look", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "three"},
        {"role": "user", "content": "thanks"},
    ]


def test_normalised_items_have_types_ids_and_parts() -> None:
    items = normalise(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "id": "msg_given"},
            {"type": "reasoning", "summary": []},
        ],
        "input",
    )
    assert len(items) == 2
    assert items[0]["id"].startswith("msg_")
    assert items[0]["content"] == [{"type": "input_text", "text": "hi"}]
    assert items[1]["id"] == "msg_given"
    assert items[1]["content"] == [{"type": "output_text", "text": "hello", "annotations": []}]
    assert normalise("hi", "input")[0]["role"] == "user"
    assert to_messages(items) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]


def test_a_response_output_with_a_refusal_and_reasoning_reads_back() -> None:
    output: list[dict[str, Any]] = [
        {"id": "rs_1", "type": "reasoning", "summary": [], "content": []},
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "No.", "annotations": [], "logprobs": []},
                {"type": "refusal", "refusal": " I can't."},
            ],
        },
    ]
    assert to_messages(output) == [{"role": "assistant", "content": "No. I can't."}]


def test_tools_tool_choice_and_formats() -> None:
    body = chat(
        {
            "input": "hi",
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": False,
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "weather",
                    "schema": {"type": "object"},
                    "strict": True,
                },
                "verbosity": "low",
            },
        }
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": {"type": "object"}, "strict": True},
    }
    json_object = chat({"input": "hi", "text": {"format": {"type": "json_object"}}})
    assert json_object["response_format"] == {"type": "json_object"}
    plain = chat({"input": "hi", "text": {"format": {"type": "text"}}, "tool_choice": "none"})
    assert "response_format" not in plain
    assert plain["tool_choice"] == "none"
    assert "parallel_tool_calls" not in chat({"input": "hi", "parallel_tool_calls": True})


def test_the_echo_fills_openais_defaults() -> None:
    echo = decode({"input": "hi"}).echo
    assert echo["tools"] == []
    assert echo["tool_choice"] == "auto"
    assert echo["parallel_tool_calls"] is True
    assert echo["text"] == {"format": {"type": "text"}}
    assert echo["store"] is True
    assert echo["truncation"] == "disabled"
    assert echo["metadata"] == {}
    given = decode({"input": "hi", "store": False, "text": {"verbosity": "low"}}).echo
    assert given["store"] is False
    assert given["text"] == {"verbosity": "low", "format": {"type": "text"}}
    assert decode({"input": "hi", "store": False}).store is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 5}, "input"),
        ({"input": []}, "input"),
        ({}, "input"),
        ({"input": "hi", "temperature": 3}, "temperature"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "previous_response_id": "resp_1:owner:bob"}, "previous_response_id"),
        ({"input": "hi", "conversation": "conv_1"}, "conversation"),
        ({"input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": "hi", "tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [WEATHER, {"type": "file_search"}]}, "tools[1].type"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "hi", "tools": [{**WEATHER, "parameters": "x"}]}, "tools[0].parameters"),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
        ({"input": [{"content": "no role or type"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": [{"type": "video"}]}]}, "input[0].content[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": 1}]}]},
            "input[0].content[0].text",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f1"}]}]},
            "input[0].content[0].file_id",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f1"}]}]},
            "input[0].content[0].file_data",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call", "call_id": "c"}]}, "input[0].name"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_image", "image_url": "https://x/y.png"}],
                    }
                ]
            },
            "input[0].output[0]",
        ),
        (
            {"input": "hi", "instructions": [{"role": "nobody", "content": "x"}]},
            "instructions[0].role",
        ),
    ],
)
def test_bad_or_unsupported_input_is_a_400_naming_the_field(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat(body)
    assert caught.value.param == param
    assert caught.value.status == 400


def test_builtin_tools_are_refused_by_name() -> None:
    with pytest.raises(InvalidRequest, match="'web_search_preview' is not supported"):
        decode({"input": "hi", "tools": [{"type": "web_search_preview"}]})


def test_custom_tools_their_calls_and_outputs() -> None:
    grammar = {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}
    body = chat(
        {
            "input": [
                {"role": "user", "content": "run it"},
                {"type": "custom_tool_call", "call_id": "c1", "name": "python", "input": "1+1"},
                {"type": "custom_tool_call_output", "call_id": "c1", "output": "2"},
            ],
            "tools": [
                {"type": "custom", "name": "python", "description": "Runs code", "format": grammar}
            ],
            "tool_choice": {"type": "custom", "name": "python"},
        }
    )
    assert body["tools"] == [
        {
            "type": "custom",
            "custom": {"name": "python", "description": "Runs code", "format": grammar},
        }
    ]
    assert body["tool_choice"] == {"type": "custom", "custom": {"name": "python"}}
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "custom", "custom": {"name": "python", "input": "1+1"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
    ]
    assert decode({"input": "x", "tools": [{"type": "custom", "name": "python"}]}).custom_tools
    assert not decode({"input": "x", "tools": [WEATHER]}).custom_tools


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "tools": [{"type": "custom"}]}, "tools[0].name"),
        (
            {"input": "hi", "tools": [{"type": "custom", "name": "p", "format": "x"}]},
            "tools[0].format",
        ),
        ({"input": [{"type": "custom_tool_call", "call_id": "c", "input": "x"}]}, "input[0].name"),
        ({"input": [{"type": "custom_tool_call_output", "output": "x"}]}, "input[0].call_id"),
    ],
)
def test_bad_custom_tools_are_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat(body)
    assert caught.value.param == param
