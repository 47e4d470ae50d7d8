"""The server-side tool loop, end to end: a real gateway, a scripted upstream that asks for tools,
and the `openai` SDK (and a raw SSE reader where the wire itself matters)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from app.errors import ToolError
from app.tools import builtin
from app.tools.context import Register, ToolContext
from tests.conftest import MakeGateway
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import serve

RUNS: list[tuple[float, float]] = []


async def sleepy(seconds: float) -> dict[str, Any]:
    """Sleeps, then says how long."""
    started = time.monotonic()
    await asyncio.sleep(seconds)
    RUNS.append((started, time.monotonic()))
    return {"slept": seconds}


async def broken() -> str:
    """A tool whose service is down."""
    raise ToolError("the service is unreachable: connection refused")


def extra_tools(register: Register, context: ToolContext) -> None:
    register(sleepy)
    register(broken)


PLUGINS = [builtin.register_tools, extra_tools]
CLIENT_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Finds an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


@pytest.fixture
def tool_gateway(make_gateway: MakeGateway) -> str:
    return make_gateway(
        enabled_tools=["calculator", "time", "sleepy", "broken"],
        tool_plugins=PLUGINS,
        tool_timeout=1.0,
    )


def ask(url: str, text: str = "go", model: str = "openai/scripted", **kwargs: Any) -> Any:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kwargs
    )


def raw_stream(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[list[str], list[Any]]:
    """The comment lines and the decoded `data:` payloads of a streamed answer."""
    comments, events = [], []
    endpoint = f"{url}/v1/chat/completions"
    with httpx.stream("POST", endpoint, json=body, headers=headers, timeout=30) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    return comments, events


def streamed_text(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


def test_one_tool_call_runs_server_side(tool_gateway: str, upstream: OpenAIUpstreamState) -> None:
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    completion = ask(tool_gateway)
    message = completion.choices[0].message
    assert message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert message.content.startswith("Final: ")
    assert "42" in message.content
    tools_used = completion.model_extra["tools_used"]
    assert [(t["name"], t["arguments"], t["ok"]) for t in tools_used] == [
        ("calculator", {"expression": "6*7"}, True)
    ]
    first, second = upstream.requests
    offered = [t["function"]["name"] for t in first["tools"]]
    assert offered == ["calculator", "time", "sleepy", "broken"]
    call = second["messages"][-2]["tool_calls"][0]
    assert second["messages"][-2]["role"] == "assistant"
    assert call["function"] == {"name": "calculator", "arguments": '{"expression": "6*7"}'}
    result = second["messages"][-1]
    assert result["role"] == "tool"
    assert result["tool_call_id"] == call["id"]
    assert "42" in result["content"]


def test_parallel_calls_run_concurrently(tool_gateway: str, upstream: OpenAIUpstreamState) -> None:
    RUNS.clear()
    upstream.script = [[("sleepy", '{"seconds": 0.4}'), ("sleepy", '{"seconds": 0.4}')]]
    completion = ask(tool_gateway)
    assert len(RUNS) == 2
    (_, end_a), (start_b, _) = sorted(RUNS)
    assert start_b < end_a, "the second call started only after the first had finished"
    assert [t["name"] for t in completion.model_extra["tools_used"]] == ["sleepy", "sleepy"]
    tool_messages = [m for m in upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 2
    ids = {c["id"] for c in upstream.requests[-1]["messages"][-3]["tool_calls"]}
    assert {m["tool_call_id"] for m in tool_messages} == ids


def test_a_chain_of_two_steps(tool_gateway: str, upstream: OpenAIUpstreamState) -> None:
    upstream.script = [
        [("calculator", '{"expression": "2+3"}')],
        [("calculator", '{"expression": "5*10"}')],
    ]
    completion = ask(tool_gateway)
    assert len(upstream.requests) == 3
    content = completion.choices[0].message.content
    assert "5" in content
    assert "50" in content
    assert len(completion.model_extra["tools_used"]) == 2


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (("no_such_tool", "{}"), "no enabled tool is named 'no_such_tool'"),
        (("calculator", '{"expression": '), "not valid JSON"),
        (("calculator", '{"expr": "1+1"}'), "argument 'expression'"),
        (("broken", "{}"), "unreachable"),
        (("sleepy", '{"seconds": 5}'), "did not finish within 1s"),
    ],
)
def test_failing_calls_become_tool_messages_and_the_turn_goes_on(
    tool_gateway: str, upstream: OpenAIUpstreamState, call: tuple[str, str], says: str
) -> None:
    upstream.script = [[call]]
    completion = ask(tool_gateway)
    assert completion.choices[0].finish_reason == "stop"
    assert says in completion.choices[0].message.content
    (used,) = completion.model_extra["tools_used"]
    assert used["ok"] is False
    assert says in used["error"]


def test_max_tool_steps_then_an_answer_without_tools(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"], max_tool_steps=2)
    upstream.script = [[("calculator", '{"expression": "1+1"}')]] * 5
    completion = ask(url)
    assert len(upstream.requests) == 3
    assert "tools" in upstream.requests[1]
    assert "tools" not in upstream.requests[2]
    assert completion.choices[0].message.tool_calls is None
    assert len(completion.model_extra["tools_used"]) == 2


def test_client_tools_are_passed_back_not_run(
    tool_gateway: str, upstream: OpenAIUpstreamState
) -> None:
    upstream.script = [[("lookup_order", '{"order_id": "A1"}')]]
    completion = ask(tool_gateway, tools=[CLIENT_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "lookup_order"
    assert json.loads(call.function.arguments) == {"order_id": "A1"}
    offered = [t["function"]["name"] for t in upstream.requests[0]["tools"]]
    assert offered == ["lookup_order", "calculator", "time", "sleepy", "broken"]
    assert completion.model_extra["tools_used"] == []


def test_the_client_wins_a_name_collision(tool_gateway: str, upstream: OpenAIUpstreamState) -> None:
    theirs: ChatCompletionToolParam = {
        **CLIENT_TOOL,
        "function": {**CLIENT_TOOL["function"], "name": "calculator"},
    }
    upstream.script = [[("calculator", '{"order_id": "A1"}')]]
    completion = ask(tool_gateway, tools=[theirs])
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.tool_calls[0].function.name == "calculator"
    calculators = [
        t for t in upstream.requests[0]["tools"] if t["function"]["name"] == "calculator"
    ]
    assert calculators == [theirs]
    assert len(upstream.requests) == 1


def test_a_step_with_both_kinds_of_calls_returns_only_the_clients(
    tool_gateway: str, upstream: OpenAIUpstreamState
) -> None:
    upstream.script = [
        [("calculator", '{"expression": "1+1"}'), ("lookup_order", '{"order_id": "B2"}')]
    ]
    for stream in (False, True):
        if stream:
            _, events = raw_stream(
                tool_gateway,
                {
                    "model": "openai/scripted",
                    "stream": True,
                    "messages": [{"role": "user", "content": "go"}],
                    "tools": [CLIENT_TOOL],
                },
            )
            deltas = [c["delta"] for e in events[:-1] for c in e["choices"]]
            calls = [call for d in deltas for call in d.get("tool_calls") or []]
            assert [c["function"]["name"] for c in calls] == ["lookup_order"]
            assert calls[0]["index"] == 0
            assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
        else:
            completion = ask(tool_gateway, tools=[CLIENT_TOOL])
            names = [c.function.name for c in completion.choices[0].message.tool_calls]
            assert names == ["lookup_order"]


def test_stream_shows_the_activity_line_when_asked_and_keepalives_then_the_answer(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(
        enabled_tools=["sleepy"],
        tool_plugins=PLUGINS,
        tool_keepalive=0.1,
        tool_timeout=5,
        tool_activity_in_content=True,
    )
    upstream.script = [[("sleepy", '{"seconds": 0.5}')]]
    body = {
        "model": "openai/scripted",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "go"}],
    }
    comments, events = raw_stream(url, body)
    assert comments[0] == ": running sleepy"
    assert comments.count(": still running sleepy") >= 2
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert sum(1 for c in chunks for ch in c["choices"] if ch["delta"].get("role")) == 1
    text = streamed_text(chunks)
    assert text.startswith("> Running tool: sleepy\n\n")
    assert "Final: " in text
    assert not any(ch["delta"].get("tool_calls") for c in chunks for ch in c["choices"])
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["stop"]
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    first, second = (r for r in upstream.requests)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > sum(len(m["content"].split()) for m in first["messages"])
    assert all(c["usage"] is None for c in chunks[:-1])
    assert second["messages"][-1]["role"] == "tool"


def test_by_default_the_content_is_the_models_alone_streamed_or_not(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    upstream.preamble = "Let me work that out."
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    body = {"model": "openai/scripted", "messages": [{"role": "user", "content": "go"}]}
    comments, events = raw_stream(url, {**body, "stream": True})
    assert comments == [": running calculator"]
    assert not any("event" in e for e in events[:-1]), "no status events for an unknown client"
    streamed = streamed_text(events[:-1])
    assert streamed.startswith("Let me work that out.\n\nFinal: ")
    plain = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).json()
    assert plain["choices"][0]["message"]["content"] == streamed


@pytest.mark.parametrize(
    "extra",
    [
        {"response_format": {"type": "json_object"}},
        {"tools": [CLIENT_TOOL]},
    ],
    ids=["response_format", "client_tools"],
)
def test_the_activity_line_is_never_put_in_json_output_or_beside_client_tools(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, extra: dict[str, Any]
) -> None:
    url = make_gateway(enabled_tools=["calculator"], tool_activity_in_content=True)
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    body = {
        "model": "openai/scripted",
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    comments, events = raw_stream(url, {**body, **extra})
    assert comments == [": running calculator"]
    assert streamed_text(events[:-1]).startswith("Final: ")


@pytest.mark.parametrize(
    ("setting", "headers", "sent"),
    [
        ("auto", {"X-OpenWebUI-Task": ""}, True),
        ("auto", {"X-OpenWebUI-User-Id": "u1"}, True),
        ("auto", {}, False),
        ("on", {}, True),
        ("off", {"X-OpenWebUI-Task": ""}, False),
    ],
)
def test_tool_progress_goes_to_openwebui_as_status_events(
    make_gateway: MakeGateway,
    upstream: OpenAIUpstreamState,
    setting: str,
    headers: dict[str, str],
    sent: bool,
) -> None:
    url = make_gateway(enabled_tools=["calculator"], status_events=setting)
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    body = {
        "model": "openai/scripted",
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    _, events = raw_stream(url, body, headers)
    statuses = [e["event"] for e in events[:-1] if "event" in e]
    if sent:
        started, finished = statuses
        assert started == {
            "type": "status",
            "data": {"description": "Running calculator…", "done": False},
        }
        assert finished["data"]["description"].startswith("Ran calculator in ")
        assert finished["data"]["done"] is True
    else:
        assert statuses == []
    assert streamed_text([e for e in events[:-1] if "event" not in e]).startswith("Final: ")


async def test_stream_with_the_async_sdk(tool_gateway: str, upstream: OpenAIUpstreamState) -> None:
    upstream.script = [[("time", '{"zone": "Asia/Tokyo"}')]]
    async with openai.AsyncOpenAI(
        base_url=f"{tool_gateway}/v1", api_key="k", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="openai/scripted", messages=[{"role": "user", "content": "time?"}], stream=True
        )
        text = ""
        async for chunk in stream:
            assert not chunk.choices or not chunk.choices[0].delta.tool_calls
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert "Running tool" not in text
    assert "Asia/Tokyo" in text


def test_tool_choice_none_offers_no_server_tools(
    tool_gateway: str, upstream: OpenAIUpstreamState
) -> None:
    ask(tool_gateway, model="openai/gpt-test", tools=[CLIENT_TOOL], tool_choice="none")
    assert [t["function"]["name"] for t in upstream.requests[0]["tools"]] == ["lookup_order"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("What is 17% of 2400?", "408"),
        ("What time is it in Tokyo?", "Asia/Tokyo"),
    ],
)
def test_models_without_function_calling_get_the_detected_tool(
    tool_gateway: str, upstream: OpenAIUpstreamState, text: str, says: str
) -> None:
    completion = ask(tool_gateway, text, model="openai/no-tools")
    content = completion.choices[0].message.content
    assert content.startswith("You said: [The gateway ran the ")
    assert says in content
    assert content.endswith(text)
    assert "tools" in upstream.requests[0]
    assert "tools" not in upstream.requests[1]
    upstream.requests.clear()
    ask(tool_gateway, text, model="openai/no-tools")
    assert len(upstream.requests) == 1, "the model's lack of function calling is remembered"


def test_detected_tool_streams_its_status_first(
    tool_gateway: str, upstream: OpenAIUpstreamState
) -> None:
    body = {
        "model": "openai/no-tools",
        "stream": True,
        "messages": [{"role": "user", "content": "What is 17% of 2400?"}],
    }
    comments, events = raw_stream(tool_gateway, body)
    assert comments == [": running calculator"]
    text = streamed_text(events[:-1])
    assert text.startswith("You said: [The gateway ran")
    assert "408" in text


def test_no_tool_detected_means_a_plain_answer(
    tool_gateway: str, upstream: OpenAIUpstreamState
) -> None:
    completion = ask(tool_gateway, "Tell me a story", model="openai/no-tools")
    assert completion.choices[0].message.content == "You said: Tell me a story"
    assert "tools_used" not in (completion.model_extra or {})


def test_detection_can_be_turned_off(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"], tool_detection="off")
    completion = ask(url, "What is 17% of 2400?", model="openai/no-tools")
    assert completion.choices[0].message.content == "You said: What is 17% of 2400?"


def test_unknown_model_is_still_a_404(tool_gateway: str) -> None:
    with pytest.raises(openai.NotFoundError):
        ask(tool_gateway, model="openai/nope")


def test_ollama_models_without_tools_get_the_detected_tool(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    base, fake = ollama_server
    url = make_gateway(ollama_base_url=base, enabled_tools=["calculator"])
    completion = ask(url, "What is 17% of 2400?", model="ollama/no-tools")
    assert "408" in completion.choices[0].message.content
    assert [bool(r.get("tools")) for r in fake.chat_requests] == [True, False]


def test_ollama_function_calling_runs_server_tools(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    base, fake = ollama_server
    url = make_gateway(ollama_base_url=base, enabled_tools=["time"])
    completion = ask(url, "what time is it in Paris?", model="ollama/tool-model")
    assert completion.choices[0].message.content.startswith("Tool said: ")
    assert [t["name"] for t in completion.model_extra["tools_used"]] == ["time"]
    assert fake.chat_requests[1]["messages"][-1]["role"] == "tool"


def test_openwebui_background_tasks_get_no_tools(
    tool_gateway: str, upstream: OpenAIUpstreamState
) -> None:
    task = "### Task:\nGenerate a concise title.\n### Chat History:\nUSER: weather in Paris?"
    ask(tool_gateway, task, model="openai/no-tools")
    assert len(upstream.requests) == 1
    assert "tools" not in upstream.requests[0]


@pytest.mark.parametrize(
    "choice",
    ["required", {"type": "function", "function": {"name": "lookup_order"}}],
    ids=["required", "named"],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_constrained_tool_choice_holds_and_gets_no_server_tools(
    tool_gateway: str, upstream: OpenAIUpstreamState, choice: Any, stream: bool
) -> None:
    upstream.script = [[("lookup_order", '{"order_id": "7"}')]]
    body = {
        "model": "openai/scripted",
        "messages": [{"role": "user", "content": "go"}],
        "tools": [CLIENT_TOOL],
        "tool_choice": choice,
    }
    if stream:
        _, events = raw_stream(tool_gateway, {**body, "stream": True})
        calls = [
            call["function"]["name"]
            for e in events[:-1]
            for ch in e["choices"]
            for call in ch["delta"].get("tool_calls") or []
            if call.get("function", {}).get("name")
        ]
    else:
        message = ask(tool_gateway, tools=[CLIENT_TOOL], tool_choice=choice).choices[0].message
        calls = [c.function.name for c in message.tool_calls]
    assert calls == ["lookup_order"]
    (sent,) = upstream.requests
    assert sent["tool_choice"] == choice
    assert [t["function"]["name"] for t in sent["tools"]] == ["lookup_order"]


def test_weather_in_paris_is_detected_and_fetched(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    meteo = FakeOpenMeteo()
    with serve(meteo.app) as meteo_url:
        url = make_gateway(
            enabled_tools=["weather", "calculator"],
            weather_geocoding_url=f"{meteo_url}/v1/search",
            weather_forecast_url=f"{meteo_url}/v1/forecast",
        )
        completion = ask(url, "What's the weather in Paris?", model="openai/no-tools")
    content = completion.choices[0].message.content
    assert "[The gateway ran the weather tool" in content
    assert "Open-Meteo" in content
    assert "France" in content
    assert meteo.geocoding_requests[0]["name"] == "Paris"
    (used,) = completion.model_extra["tools_used"]
    assert (used["name"], used["arguments"], used["ok"]) == ("weather", {"location": "Paris"}, True)


def test_the_model_classifies_when_no_pattern_matches(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"], tool_detection="model")
    upstream.classification = '{"tool": "calculator", "arguments": {"expression": "90*2"}}'
    completion = ask(url, "double ninety for me", model="openai/no-tools")
    assert "180" in completion.choices[0].message.content
    question = upstream.requests[1]
    assert question["temperature"] == 0
    assert "calculator:" in question["messages"][0]["content"]
    assert question["messages"][1]["content"] == "double ninety for me"
    upstream.classification = "I would not use a tool."
    completion = ask(url, "tell me a joke", model="openai/no-tools")
    assert completion.choices[0].message.content == "You said: tell me a joke"


def test_what_the_model_says_before_its_calls_streams_and_is_kept(
    tool_gateway: str, upstream: OpenAIUpstreamState
) -> None:
    upstream.preamble = "Let me work that out."
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    body = {
        "model": "openai/scripted",
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    _, events = raw_stream(tool_gateway, body)
    text = streamed_text(events[:-1])
    assert text.startswith("Let me work that out.\n\nFinal: ")
    assistant = upstream.requests[1]["messages"][-2]
    assert assistant["content"] == "Let me work that out."
    assert assistant["tool_calls"][0]["function"]["name"] == "calculator"
