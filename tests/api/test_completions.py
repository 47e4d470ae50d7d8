"""POST /v1/completions, OpenAI's legacy text completions, through a real gateway on the fake
upstreams: natively where the upstream has `/completions`, as a chat where it has not."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest

from tests.api.sse import sse_events
from tests.conftest import MakeGateway
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

PATH = "/v1/completions"


def post(url: str, path: str = PATH, **body: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30)


def send(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + PATH, json=body, timeout=30)


def streamed(url: str, **body: Any) -> list[Any]:
    resp, events = sse_events(url, {**body, "stream": True}, PATH)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    return events


def texts(events: list[Any]) -> dict[int, str]:
    """Each choice's text, from the streamed chunks."""
    out: dict[int, str] = {}
    for event in events:
        for choice in event["choices"] if isinstance(event, dict) else ():
            out[choice["index"]] = out.get(choice["index"], "") + choice["text"]
    return out


def asked(upstream: OpenAIUpstreamState) -> list[str]:
    """Which of the upstream's paths the gateway asked, in order."""
    return ["completions" if "prompt" in r else "chat" for r in upstream.requests]


# --- the answer's shape -------------------------------------------------------------------------


def test_a_prompt_is_completed_natively(gateway: str, upstream: OpenAIUpstreamState) -> None:
    resp = post(gateway, model="openai/gpt-test", prompt="Say hi", stop="\n", user="u1")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"].startswith("cmpl-")
    assert body["object"] == "text_completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "openai/gpt-test"
    assert body["choices"] == [
        {"text": GREETING, "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    sent = upstream.requests[-1]
    assert asked(upstream) == ["completions"]
    assert sent["prompt"] == "Say hi"  # as is: no persona, no messages
    assert (sent["model"], sent["max_tokens"], sent["stop"], sent["user"]) == (
        "gpt-test",
        16,  # OpenAI's default for this endpoint
        "\n",
        "u1",
    )


def test_a_stream_is_text_completion_chunks_then_usage_then_done(gateway: str) -> None:
    events = streamed(
        gateway,
        model="openai/gpt-test",
        prompt="echo: one two three",
        stream_options={"include_usage": True},
    )
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"].startswith("cmpl-")
    assert texts(events) == {0: "one two three"}
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, None, "stop"]
    assert all(c["choices"][0]["logprobs"] is None and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_a_stream_without_include_usage_has_no_usage(gateway: str) -> None:
    events = streamed(gateway, model="openai/gpt-test", prompt="hi")
    assert all("usage" not in e and e["choices"] for e in events[:-1])
    assert texts(events) == {0: GREETING}


@pytest.mark.parametrize("stream", [False, True])
def test_a_list_of_prompts_gets_one_choice_per_prompt_in_order(
    gateway: str, upstream: OpenAIUpstreamState, stream: bool
) -> None:
    body = {"model": "openai/gpt-test", "prompt": ["echo: one", "echo: two", "echo: three"]}
    if stream:
        events = streamed(gateway, **body, stream_options={"include_usage": True})
        assert texts(events) == {0: "one", 1: "two", 2: "three"}
        usage = events[-2]["usage"]
    else:
        answer = send(gateway, body).json()
        assert [(c["index"], c["text"]) for c in answer["choices"]] == [
            (0, "one"),
            (1, "two"),
            (2, "three"),
        ]
        usage = answer["usage"]
    assert usage == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
    assert [r["prompt"] for r in upstream.requests] == ["echo: one", "echo: two", "echo: three"]


def test_n_choices_of_each_prompt_are_numbered_as_openai_does(gateway: str) -> None:
    answer = post(gateway, model="openai/gpt-test", prompt=["echo: a", "echo: b"], n=2).json()
    assert [(c["index"], c["text"]) for c in answer["choices"]] == [
        (0, "a"),
        (1, "a"),
        (2, "b"),
        (3, "b"),
    ]


def test_max_tokens_cuts_the_answer_with_finish_reason_length(gateway: str) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    answer = post(gateway, model="openai/gpt-test", prompt=f"echo: {words}").json()
    assert answer["choices"][0]["finish_reason"] == "length"
    assert len(answer["choices"][0]["text"].split()) == 16
    short = post(gateway, model="openai/gpt-test", prompt=f"echo: {words}", max_tokens=2).json()
    assert short["choices"][0]["text"] == "w0 w1"


def test_routes_answer_without_the_v1_prefix(gateway: str) -> None:
    resp = post(gateway, "/completions", model="gpt-test", prompt="hi")
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["text"] == GREETING


# --- what is refused, and how -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({}, "prompt", "'prompt' is a required property"),
        ({"prompt": []}, "prompt", "must not be an empty list"),
        ({"prompt": [1, 2, 3]}, "prompt", "token ids are not supported"),
        ({"prompt": [[1, 2], [3]]}, "prompt", "token ids are not supported"),
        ({"prompt": "x", "echo": True}, "echo", "echo is not supported"),
        ({"prompt": "x", "suffix": "}"}, "suffix", "suffix (fill in the middle)"),
        ({"prompt": "x", "logprobs": 2}, "logprobs", "logprobs are not supported"),
        ({"prompt": "x", "best_of": 3}, "best_of", "best_of above 1"),
        ({"prompt": "x", "stop": list("abcde")}, "stop", "at most 4 stop sequences"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"prompt": "x", "temperature": 3}, "temperature", "less than or equal to 2"),
        ({"prompt": "x", "n": 0}, "n", "greater than or equal to 1"),
        ({"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options", "stream"),
    ],
)
def test_bad_or_unsupported_requests_are_400_naming_the_param(
    gateway: str, upstream: OpenAIUpstreamState, body: dict[str, Any], param: str, message: str
) -> None:
    resp = post(gateway, model="openai/gpt-test", **body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert message in error["message"]
    assert upstream.requests == []


def test_what_is_not_refused_passes_through(gateway: str, upstream: OpenAIUpstreamState) -> None:
    resp = post(
        gateway,
        model="openai/gpt-test",
        prompt="x",
        echo=False,
        suffix="",
        best_of=1,
        logprobs=None,
        logit_bias={"50256": -100},
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        temperature=0.7,
        top_p=0.9,
    )
    assert resp.status_code == 200, resp.text
    sent = upstream.requests[-1]
    assert sent["logit_bias"] == {"50256": -100}
    assert (sent["seed"], sent["presence_penalty"], sent["frequency_penalty"]) == (3, 0.5, -0.5)
    assert (sent["temperature"], sent["top_p"]) == (0.7, 0.9)
    assert "logprobs" not in sent  # nulls are not forwarded


def test_n_above_one_where_the_provider_cannot(
    make_gateway: MakeGateway, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    url, _ = openai_server
    gw = make_gateway(llamacpp_base_url=url)
    resp = post(gw, model="llamacpp/gpt-test", prompt="x", n=2)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "n"


def test_wrong_method_and_unparseable_bodies(gateway: str) -> None:
    resp = httpx.get(f"{gateway}{PATH}")
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"
    resp = httpx.post(f"{gateway}{PATH}", content=b"{nope")
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]["message"]


# --- upstream failures ----------------------------------------------------------------------------


def test_upstream_errors_keep_their_status(gateway: str) -> None:
    assert post(gateway, model="openai/nope", prompt="x").status_code == 404
    assert post(gateway, model="openai/nope", prompt="x").json()["error"]["code"] == (
        "model_not_found"
    )
    limited = post(gateway, model="openai/rate-limited", prompt="x")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert post(gateway, model="openai/error-500", prompt="x").status_code == 502


def test_a_stream_cut_mid_answer_ends_with_an_in_band_error(gateway: str) -> None:
    events = streamed(gateway, model="openai/cut", prompt="x")
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "upstream_error"
    assert events[-2]["error"]["message"] == (
        "openai: the connection closed before the answer was complete"
    )
    assert texts(events[:-2]) == {0: "Hello from"}


def test_a_prompt_that_fails_mid_stream_ends_the_answer_in_band(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    events = streamed(gateway, model="openai/cut", prompt=["x", "y"])
    assert events[-2]["error"]["code"] == "upstream_error"
    assert texts(events[:-2]) == {0: "Hello from"}
    assert [r["prompt"] for r in upstream.requests] == ["x"]  # the next prompt is not asked


def test_retries_and_fallbacks_apply_as_for_chat(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(retry_attempts=3, fallback_models=["openai/gpt-test"])
    assert post(url, model="openai/flaky", prompt="x").json()["choices"][0]["text"] == GREETING
    assert asked(upstream) == ["completions"] * 3
    answer = post(url, model="openai/error-500", prompt="x").json()
    assert answer["model"] == "openai/gpt-test"
    assert answer["choices"][0]["text"] == GREETING


async def test_client_disconnect_cancels_the_upstream_request(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    body = {"model": "openai/slow-stream", "prompt": "x", "stream": True}
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream("POST", f"{gateway}{PATH}", json=body) as resp,
    ):
        lines = resp.aiter_lines()
        while not (await anext(lines)).startswith("data: "):
            pass
    assert await asyncio.to_thread(upstream.closed_early_event.wait, 5)
    assert upstream.stream_finished == 0


# --- where the upstream has no /completions: a chat -------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_without_completions_is_asked_to_chat_once_known(
    make_gateway: MakeGateway,
    openai_server: tuple[str, OpenAIUpstreamState],
    upstream: OpenAIUpstreamState,
    stream: bool,
) -> None:
    url, _ = openai_server
    gw = make_gateway(openai_base_url=f"{url}/chat-only/v1")
    for _ in range(2):
        body = {"model": "openai/gpt-test", "prompt": "echo: a b", "max_tokens": 5}
        if stream:
            assert texts(streamed(gw, **body)) == {0: "a b"}
        else:
            answer = send(gw, body).json()
            assert answer["object"] == "text_completion"
            assert answer["choices"][0]["text"] == "a b"
    assert upstream.missing_completions == 1
    assert asked(upstream) == ["chat", "chat"]
    for sent in upstream.requests:  # no persona, no tools: the prompt as the one message
        assert sent["messages"] == [{"role": "user", "content": "echo: a b"}]
        assert sent["max_tokens"] == 5
        assert "tools" not in sent


def test_a_model_refused_on_completions_is_asked_to_chat(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    for _ in range(2):
        answer = post(gateway, model="openai/chat-only", prompt=["echo: x", "echo: y"]).json()
        assert [c["text"] for c in answer["choices"]] == ["x", "y"]
    assert asked(upstream) == ["completions", "chat", "chat", "chat", "chat"]


def test_the_gateways_tools_and_persona_do_not_apply(
    make_gateway: MakeGateway,
    openai_server: tuple[str, OpenAIUpstreamState],
    upstream: OpenAIUpstreamState,
) -> None:
    url, _ = openai_server
    gw = make_gateway(openai_base_url=f"{url}/chat-only/v1", enabled_tools=["calculator"])
    answer = post(gw, model="openai/gpt-test", prompt="What is 6*7?").json()
    assert answer["choices"][0]["text"] == GREETING
    assert upstream.requests[-1]["messages"] == [{"role": "user", "content": "What is 6*7?"}]
    assert "tools" not in upstream.requests[-1]


# --- Ollama: natively, through /api/generate ----------------------------------------------------


def test_ollama_completes_a_prompt_raw(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    url, fake = ollama_server
    gw = make_gateway(ollama_base_url=url)
    answer = post(gw, model="ollama/llama3.2", prompt="Once upon a time", max_tokens=3).json()
    assert answer["choices"] == [
        {"text": "Hello, world", "index": 0, "logprobs": None, "finish_reason": "length"}
    ]
    assert fake.chat_requests == []
    assert fake.generate_requests[-1]["raw"] is True
    refused = post(gw, model="ollama/llama3.2", prompt="x", logit_bias={"1": 2})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "logit_bias"


# --- tokens against the key's TPM limit -----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_tokens_are_charged_against_the_tpm_limit(make_gateway: MakeGateway, stream: bool) -> None:
    url = make_gateway(api_keys=["tpm-key"], rate_limit_tpm=20)
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="tpm-key", max_retries=0)
    prompt = "hi " * 30
    if stream:
        assert list(sdk.completions.create(model="openai/gpt-test", prompt=prompt, stream=True))
    else:
        usage = sdk.completions.create(model="openai/gpt-test", prompt=prompt).usage
        assert usage is not None
        assert usage.prompt_tokens > 20
    time.sleep(0.2)  # the charge is made just after the answer has been sent
    with pytest.raises(openai.RateLimitError):
        sdk.completions.create(model="openai/gpt-test", prompt="x")


def test_the_route_is_in_the_openapi_schema(gateway: str) -> None:
    document = httpx.get(f"{gateway}/openapi.json").json()
    operation = document["paths"]["/v1/completions"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["prompt"]
    assert {"prompt", "max_tokens", "stop", "stream", "echo", "suffix"} <= set(schema["properties"])
    assert "/completions" not in document["paths"]
