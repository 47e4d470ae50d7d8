"""The engine's choices seen from the wire: a model that cannot call tools still answers a request
that carries the client's tools; OpenWebUI's background tasks go out as sent; a plain answer that
breaks half-way falls back, since nothing has reached the client."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionCustomToolParam

from app.chat.tasks import task_kind
from tests.api.sse import sse_events
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState

CLIENT_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
TITLE = (
    "### Task:\nGenerate a concise title summarizing the chat history.\n"
    "### Guidelines:\n- The title should clearly represent the main theme.\n"
    "### Chat History:\n<chat_history>\nUSER: Hello!\nASSISTANT: Hi there.\n</chat_history>"
)


def post(url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


@pytest.mark.parametrize("stream", [False, True])
def test_client_tools_are_not_sent_to_a_model_that_cannot_call_them(
    make_gateway: MakeGateway,
    upstream: OpenAIUpstreamState,
    caplog: pytest.LogCaptureFixture,
    stream: bool,
) -> None:
    url = make_gateway()
    body = {
        "model": "openai/no-tools",
        "messages": [{"role": "user", "content": "Hello!"}],
        "tools": [CLIENT_TOOL],
        "tool_choice": "auto",
    }
    with caplog.at_level(logging.WARNING, logger="app.chat.engine"):
        for _ in range(2):
            if stream:
                resp, events = sse_events(url, {**body, "stream": True})
                text = "".join(
                    e["choices"][0]["delta"].get("content") or ""
                    for e in events[:-1]
                    if e["choices"]
                )
            else:
                resp = post(url, **body)
                assert resp.status_code == 200, resp.text
                text = resp.json()["choices"][0]["message"]["content"]
            assert text.endswith("Hello!")
            assert resp.headers["x-tools-dropped"] == (
                "1 tools not sent: openai/no-tools cannot call tools"
            )
    assert [r.getMessage() for r in caplog.records if "cannot call tools" in r.getMessage()] == [
        "openai/no-tools cannot call tools: requests for it are answered without the client's tools"
    ]
    # the first request learnt that the model refuses tools; the second sent none
    assert "tools" in upstream.requests[0]
    assert [("tools" in r, "tool_choice" in r) for r in upstream.requests[1:]] == [
        (False, False)
    ] * 2


def test_a_model_with_function_calling_gets_the_client_tools(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway()
    resp = post(
        url,
        model="openai/tool-model",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[CLIENT_TOOL],
    )
    assert resp.status_code == 200
    assert "x-tools-dropped" not in resp.headers
    assert resp.json()["choices"][0]["finish_reason"] == "tool_calls"


def test_a_background_task_goes_out_as_sent(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    messages = [{"role": "user", "content": TITLE}]
    resp = post(url, model="openai/gpt-test", messages=messages, stream=False)
    assert resp.status_code == 200
    (sent,) = upstream.requests
    assert sent["messages"] == messages, "no persona in front of a task"
    assert "tools" not in sent


def test_task_model_takes_the_background_tasks(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(task_model="openai/gpt-test")
    task = post(url, model="openai/no-tools", messages=[{"role": "user", "content": TITLE}])
    turn = post(url, model="openai/no-tools", messages=[{"role": "user", "content": "Hello!"}])
    assert (task.json()["model"], turn.json()["model"]) == ("openai/gpt-test", "openai/no-tools")


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openwebui"


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("task_title", "title"),
        ("task_tags", "tags"),
        ("task_follow_ups", "follow_ups"),
        ("task_query", "queries"),
        ("task_autocomplete", "autocomplete"),
        ("task_image_prompt", "image_prompt"),
        ("task_emoji", "emoji"),
        ("task_moa", "moa"),
        ("chat_with_native_tools", None),
        ("chat_with_stream_options", None),
        ("multi_turn", None),
    ],
)
def test_openwebui_s_recorded_requests(fixture: str, kind: str | None) -> None:
    body = json.loads((FIXTURES / f"{fixture}.json").read_text())
    assert task_kind(body["messages"]) == kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (TITLE, "title"),
        ("### Task:\nSuggest 3-5 relevant follow-up questions or prompts", "follow_ups"),
        ("### Task:\nSummarize the conversation history that will be compacted out", "compaction"),
        ("Hello!", None),
        ("Please write ### Task: lists for me", None),
        # OpenWebUI's retrieval template, in front of a user's own question: a real chat
        ("### Task:\nRespond to the user query using the provided context, with citations", None),
    ],
)
def test_task_kinds(text: str, kind: str | None) -> None:
    assert task_kind([{"role": "user", "content": text}]) == kind


def test_legacy_function_calling_is_a_task() -> None:
    messages = [
        {"role": "system", "content": "Available Tools: []\n\nYour task is to choose"},
        {"role": "user", "content": "Query: weather?"},
    ]
    assert task_kind(messages) == "tool_choice"


def test_a_plain_answer_cut_half_way_falls_back(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(fallback_models=["openai/gpt-test"])
    resp = post(url, model="openai/cut", messages=[{"role": "user", "content": "hi"}])
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "openai/gpt-test"
    assert resp.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    # streamed, the first bytes went out: the cut is said in-band instead
    streamed = {"model": "openai/cut", "messages": [{"role": "user", "content": "hi"}]}
    _, events = sse_events(url, {**streamed, "stream": True})
    assert "error" in events[-2]


def test_the_task_header_marks_a_background_task(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    messages = [{"role": "user", "content": "A custom title prompt: name this chat."}]
    for header, persona in (("title_generation", False), ("", True)):
        resp = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "openai/gpt-test", "messages": messages},
            headers={"X-OpenWebUI-Task": header},
            timeout=30,
        )
        assert resp.status_code == 200
        sent = upstream.requests[-1]
        assert (sent["messages"][0]["role"] == "system") is persona


CUSTOM_TOOL: ChatCompletionCustomToolParam = {
    "type": "custom",
    "custom": {"name": "run_python", "description": "Runs Python.", "format": {"type": "text"}},
}


@pytest.mark.parametrize("server_tools", [[], ["calculator"]], ids=["plain", "tool-loop"])
def test_custom_tools_reach_a_provider_that_takes_them_and_come_back(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, server_tools: list[str]
) -> None:
    url = make_gateway(enabled_tools=server_tools)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    question: list[Any] = [{"role": "user", "content": "say hi in python"}]
    answer = client.chat.completions.create(
        model="openai/tool-model", messages=question, tools=[CUSTOM_TOOL]
    )
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.type == "custom"
    assert (call.custom.name, call.custom.input) == ("run_python", "print('hi')")
    assert answer.choices[0].finish_reason == "tool_calls"
    assert upstream.requests[0]["tools"][0] == CUSTOM_TOOL
    stream = client.chat.completions.create(
        model="openai/tool-model", messages=question, tools=[CUSTOM_TOOL], stream=True
    )
    deltas = [d.model_dump() for c in stream for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0]["type"] == "custom"
    assert "".join(d["custom"]["input"] for d in deltas) == "print('hi')"
    follow_up = client.chat.completions.create(
        model="openai/tool-model",
        messages=[
            *question,
            {"role": "assistant", "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "hi"},
        ],
        tools=[CUSTOM_TOOL],
    )
    assert follow_up.choices[0].message.content == "Tool said: hi"


def test_custom_tools_are_refused_naming_a_provider_that_cannot_take_them(
    make_gateway: MakeGateway, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    upstream_url, _ = openai_server
    url = make_gateway(llamacpp_base_url=upstream_url)
    resp = post(
        url,
        model="llamacpp/tool-model",
        messages=[{"role": "user", "content": "hi"}],
        tools=[CUSTOM_TOOL],
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "tools"
    assert resp.json()["error"]["message"] == (
        "the model 'llamacpp/tool-model' cannot take custom tools (tools[].type 'custom'): "
        "llamacpp takes function tools only"
    )
