"""End to end with the real embedded Gemma 3 270M model: real tokens, real usage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from app.providers.base_prompt import DEFAULT_MAX_TOKENS
from tests.conftest import MakeGateway
from tests.json_schema import conforms

pytestmark = pytest.mark.slow

USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write one sentence about the sea."}
]
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello!"}]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def local_gateway() -> Iterator[str]:
    pytest.importorskip("llama_cpp")
    from app.main import create_app
    from tests.conftest import gateway_settings
    from tests.fakes.serve import serve

    with serve(create_app(gateway_settings(local_enabled=True, request_timeout=60))) as url:
        yield url


def test_real_tokens_stream_with_real_usage(local_gateway: str) -> None:
    sdk = openai.OpenAI(base_url=f"{local_gateway}/v1", api_key="unused", max_retries=0)
    chunks = list(
        sdk.chat.completions.create(
            model="local/gemma-3-270m",
            messages=USER,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    finish = [reason for reason in finish if reason]
    assert finish in (["length"], ["stop"])
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens > 20  # the dialogue frame around the question
    assert 1 <= usage.completion_tokens <= 12
    if finish == ["length"]:
        assert usage.completion_tokens == 12


def test_hello_gets_a_short_answer_that_stops_by_itself(local_gateway: str) -> None:
    """What a newcomer's first request gets: no max_tokens, no temperature, the persona on."""
    persona = json.loads((ROOT / "persona.json").read_text())
    phrases = [persona["system_prompt"][:40], *(rule[:30] for rule in persona["style"])]
    for seed in (1, 2):
        resp = httpx.post(
            f"{local_gateway}/v1/chat/completions",
            json={"model": "local/gemma-3-270m", "messages": HELLO, "seed": seed},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        answer = body["choices"][0]["message"]["content"]
        assert answer.strip(), body
        assert answer == answer.strip()
        assert body["choices"][0]["finish_reason"] == "stop", answer
        assert body["usage"]["completion_tokens"] < DEFAULT_MAX_TOKENS
        assert not [phrase for phrase in phrases if phrase.lower() in answer.lower()], answer


def test_a_prompt_is_completed_natively_as_is(local_gateway: str) -> None:
    """/v1/completions on a base model: its natural use, no dialogue frame and no persona."""
    sdk = openai.OpenAI(base_url=f"{local_gateway}/v1", api_key="unused", max_retries=0)
    whole = sdk.completions.create(
        model="local/gemma-3-270m", prompt="def fibonacci(n):", max_tokens=8, temperature=0
    )
    assert whole.object == "text_completion"
    assert whole.choices[0].text.strip()
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 8
    assert whole.usage.prompt_tokens < 10  # the prompt alone

    chunks = list(
        sdk.completions.create(
            model="local/gemma-3-270m",
            prompt="def fibonacci(n):",
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "population": {"type": "integer"},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
def test_response_format_gives_json_that_parses_and_matches(
    local_gateway: str, kind: str, stream: bool
) -> None:
    sdk = openai.OpenAI(base_url=f"{local_gateway}/v1", api_key="unused", max_retries=0)
    """Any JSON object is a free rein that the 270M model may fill until max_tokens (then the
    answer is cut, finish_reason "length"): it is asked something it answers briefly."""
    response_format: Any = {"type": "json_object"}
    question = "What is 2+2?"
    if kind == "json_schema":
        schema = {"name": "city", "schema": CITY, "strict": True}
        response_format = {"type": "json_schema", "json_schema": schema}
        question = "Name a big city and its population."
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": question}]
    asked: dict[str, Any] = {
        "model": "local/gemma-3-270m",
        "messages": messages,
        "response_format": response_format,
        "max_tokens": 60,
        "seed": 3,
    }
    if stream:
        chunks = list(sdk.chat.completions.create(**asked, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        answer = sdk.chat.completions.create(**asked)
        text, finish = answer.choices[0].message.content or "", answer.choices[0].finish_reason
    assert finish == "stop", text
    value = json.loads(text)
    assert isinstance(value, dict), text
    if kind == "json_schema":
        assert conforms(value, CITY), text


def test_out_of_the_box_default_is_the_local_model(local_gateway: str) -> None:
    models = httpx.get(f"{local_gateway}/v1/models").json()["data"]
    ids = [m["id"] for m in models]
    assert ids[0] == "local/gemma-3-270m"  # then the pipelines, on it
    assert all(i.startswith("pipeline/") for i in ids[1:])
    assert models[0]["owned_by"] == "local"
    assert "tiny base model" in models[0]["description"]
    one = httpx.get(f"{local_gateway}/v1/models/local/gemma-3-270m").json()
    assert one["description"] == models[0]["description"]
    resp = httpx.post(
        f"{local_gateway}/v1/chat/completions",
        json={"messages": USER, "max_tokens": 4},
        timeout=60,
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["model"] == "local/gemma-3-270m"
    assert body["usage"]["completion_tokens"] >= 1


def test_the_local_model_answers_without_the_client_tools(local_gateway: str) -> None:
    """OpenWebUI sends its tools with every chat; the local model cannot call them, so it
    answers without them and the response says so (this was a 400 before)."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    resp = httpx.post(
        f"{local_gateway}/v1/chat/completions",
        json={"model": "local/gemma-3-270m", "messages": USER, "tools": [tool], "max_tokens": 8},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    assert (
        resp.headers["x-tools-dropped"] == "1 tools not sent: local/gemma-3-270m cannot call tools"
    )
    assert resp.json()["choices"][0]["message"]["content"]


def test_local_model_is_the_last_fallback_when_asked(make_gateway: MakeGateway) -> None:
    pytest.importorskip("llama_cpp")
    url = make_gateway(local_enabled=True, local_fallback=True, request_timeout=60)
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai/error-500", "messages": USER, "max_tokens": 4},
        timeout=60,
    )
    assert resp.status_code == 200
    assert resp.json()["model"] == "local/gemma-3-270m"


def test_without_local_fallback_an_upstream_failure_is_the_answer(
    make_gateway: MakeGateway,
) -> None:
    pytest.importorskip("llama_cpp")
    url = make_gateway(local_enabled=True)
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai/error-500", "messages": USER, "max_tokens": 4},
        timeout=60,
    )
    assert resp.status_code == 502


@pytest.fixture(scope="module")
def local_tools_gateway() -> Iterator[str]:
    pytest.importorskip("llama_cpp")
    from app.main import create_app
    from tests.conftest import gateway_settings
    from tests.fakes.serve import serve

    settings = gateway_settings(
        local_enabled=True, request_timeout=60, enabled_tools=["calculator", "time"]
    )
    with serve(create_app(settings)) as url:
        yield url


def test_the_local_model_gets_detected_tools_while_streaming(local_tools_gateway: str) -> None:
    sdk = openai.OpenAI(base_url=f"{local_tools_gateway}/v1", api_key="unused", max_retries=0)
    chunks = list(
        sdk.chat.completions.create(
            model="local/gemma-3-270m",
            messages=[{"role": "user", "content": "What is 17% of 2400?"}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert "Running tool" not in text  # the answer is the model's alone
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens > 60  # the tool's result went into the prompt


def test_the_local_model_reports_the_tools_it_was_given(local_tools_gateway: str) -> None:
    resp = httpx.post(
        f"{local_tools_gateway}/v1/chat/completions",
        json={
            "model": "local/gemma-3-270m",
            "messages": [{"role": "user", "content": "What time is it in Tokyo?"}],
            "max_tokens": 4,
        },
        timeout=60,
    )
    assert resp.status_code == 200
    (used,) = resp.json()["tools_used"]
    assert used["name"] == "time"
    assert used["arguments"] == {"zone": "Tokyo"}
    assert used["ok"] is True


def test_alice_is_remembered_by_a_real_model_after_folding(redis_url: str) -> None:
    """The seed's scenario with the embedded model as the provider: the fold runs on the real
    model; whatever it writes, the stored summary keeps the user's name for the next turn."""
    pytest.importorskip("llama_cpp")
    from app.main import create_app
    from tests.conftest import gateway_settings
    from tests.fakes.serve import serve

    settings = gateway_settings(
        local_enabled=True, local_max_tokens=16, short_term_k=1, token_budget=300
    )
    with serve(create_app(settings)) as url:

        def say(message: str, session_id: str | None = None) -> dict[str, Any]:
            body = {"user_id": "alice", "message": message, "session_id": session_id}
            resp = httpx.post(f"{url}/chat", json=body, timeout=120)
            assert resp.status_code == 200, resp.text
            answer: dict[str, Any] = resp.json()
            return answer

        session_id = say("My name is Alice.")["session_id"]
        say("I like green tea.", session_id)
        summary = ""
        for _ in range(120):
            summary = httpx.get(f"{url}/v1/sessions/{session_id}").json()["summary"]
            if summary:
                break
            time.sleep(0.5)
        assert "Alice" in summary
        third = say("What is my name?", session_id)
        assert third["answer"].strip()
        metrics = httpx.get(f"{url}/v1/metrics/{session_id}").json()
        assert metrics["turns"] == 3
        assert metrics["last"]["history_turns"] <= 1
