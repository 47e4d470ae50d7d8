"""The `router` pipeline through a real gateway with the real embedder: each message's intent
decides where it goes (a specialist's prompt, another pipeline, a model, an escalation), the
conversation keeps its intent, and an urgent one reaches the alert webhook."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import ConfigError
from app.main import create_app
from app.pipelines.intents import load_intents
from app.pipelines.rag_qa import NOTHING_FOUND
from tests.conftest import MakeGateway, gateway_settings
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState
from tests.fakes.serve import serve
from tests.fakes.webhook import Webhook

SHIPPED = load_intents()


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[str, Webhook]]:
    receiver = Webhook()
    with serve(receiver.app) as url:
        yield f"{url}/hook", receiver


FIRST_USE = 180
"""Seconds to wait for a gateway's first routed message: it embeds the shipped intents'
examples, which takes 5-15 s on a loaded 2-core machine."""


def ask(url: str, *said: str) -> httpx.Response:
    """The router asked about a conversation: `said` alternates user and assistant."""
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": text} for i, text in enumerate(said)]
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "pipeline/router", "messages": messages},
        timeout=FIRST_USE,
    )


def executed(url: str, text: str) -> dict[str, object]:
    resp = httpx.post(f"{url}/pipelines/router/execute", json={"input": text}, timeout=FIRST_USE)
    assert resp.status_code == 200, resp.text
    result: dict[str, object] = resp.json()
    return result


def test_a_billing_question_goes_to_the_billing_specialist(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(default_model="openai/gpt-test")
    result = executed(url, "I was charged twice for the same order, can you fix it?")
    assert result["answer"] == GREETING
    agents = result["agents"]
    assert isinstance(agents, list)
    assert agents[0]["name"] == "classify"
    assert agents[0]["detail"].startswith("billing (by ")
    system = upstream.requests[0]["messages"][0]["content"]
    assert SHIPPED["billing"].target.value in system


def test_the_classifier_is_prepared_at_start_with_intent_warmup(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.pipelines.classifier")

    def prepared() -> int:
        return sum("intent classifier ready" in r.getMessage() for r in caplog.records)

    url = make_gateway(default_model="openai/gpt-test", intent_warmup=True)
    deadline = time.monotonic() + FIRST_USE
    while not prepared() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert prepared() == 1  # before any message
    agents = executed(url, "I was charged twice for the same order, can you fix it?")["agents"]
    assert isinstance(agents, list)
    assert agents[0]["detail"].startswith("billing (by ")
    assert prepared() == 1


def test_the_conversation_keeps_its_intent(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(default_model="openai/gpt-test")
    resp = ask(
        url,
        "I was charged twice for my Plus membership this month",
        "Sorry about that, let me look.",
        "yes please",
    )
    assert resp.status_code == 200, resp.text
    system = upstream.requests[-1]["messages"][0]["content"]
    assert SHIPPED["billing"].target.value in system


def test_an_emergency_is_escalated_at_once(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, webhook: tuple[str, Webhook]
) -> None:
    hook, receiver = webhook
    url = make_gateway(default_model="openai/gpt-test", alert_webhook_url=hook)
    text = "My phone charger is sparking and there is smoke coming out of it"
    result = executed(url, text)
    assert result["answer"] == SHIPPED["emergency"].target.value
    assert upstream.requests == []  # no model was asked
    agents = result["agents"]
    assert isinstance(agents, list)
    assert agents[0]["detail"].startswith("emergency (by ")
    assert agents[-1] == {
        "name": "escalate", "duration_ms": 0.0, "tokens": 0, "detail": "alert sent"
    }  # fmt: skip
    deadline = time.monotonic() + 10
    while not receiver.of("urgent_intent"):
        assert time.monotonic() < deadline, "the webhook got no alert"
        time.sleep(0.05)
    [alert] = receiver.of("urgent_intent")
    assert alert["intent"] == "emergency"
    assert alert["message"] == text
    assert alert["text"].startswith("🚨 Urgent intent 'emergency' escalated: My phone charger")


def test_a_technical_question_goes_to_rag_qa(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(default_model="openai/gpt-test")
    result = executed(url, "My dishwasher shows error E24 and won't drain, what should I do?")
    assert result["answer"] == NOTHING_FOUND  # no documents yet: rag-qa says so
    assert upstream.requests == []


def test_intents_of_your_own(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(
        "fallback: other\n"
        "intents:\n"
        "  - name: code\n"
        "    description: Programming questions.\n"
        "    model: openai/tool-model\n"
        "    patterns: ['\\bpython\\b']\n"
        "    examples: ['How do I sort a list in Python?']\n"
        "  - name: other\n"
        "    description: Anything else.\n"
        "    prompt: You answer anything else.\n"
        "    examples: ['What is the weather like?']\n"
    )
    url = make_gateway(default_model="openai/gpt-test", intents_file=path)
    steps = httpx.get(f"{url}/pipelines/router").json()["steps"]
    assert steps[0]["intents"] == ["code", "other"]
    assert steps[1]["targets"]["code"] == "model: openai/tool-model"
    executed(url, "why is my python script slow")
    assert upstream.requests[0]["model"] == "tool-model"  # then the follow-up questions
    sent = upstream.requests[0]["messages"]  # the persona, then the question: no prompt
    assert [m["role"] for m in sent] == ["system", "user"]
    assert "You answer anything else" not in sent[0]["content"]


def test_a_malformed_intents_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text("fallback: nowhere\nintents:\n  - name: a\n    prompt: x\n")
    with pytest.raises(ConfigError) as caught:
        create_app(gateway_settings(intents_file=path))
    assert str(caught.value) == (f"intents file {path}, line 3: intent 'a' has no `description`")


def test_intent_model_decides_what_the_examples_leave_ambiguous(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(
        "fallback: other\n"
        "thresholds: {match: 0.99, margin: 0.0, floor: 0.0}\n"  # nothing decided by examples
        "intents:\n"
        "  - name: code\n"
        "    description: Programming questions.\n"
        "    prompt: You are the programming specialist.\n"
        "    examples: ['How do I sort a list?']\n"
        "  - name: other\n"
        "    description: Anything else.\n"
        "    prompt: You answer anything else.\n"
        "    examples: ['What is the weather like?']\n"
    )
    url = make_gateway(
        default_model="openai/gpt-test", intents_file=path, intent_model="openai/replies"
    )
    upstream.replies = ["code"]
    result = executed(url, "my loop never ends")
    agents = result["agents"]
    assert isinstance(agents, list)
    assert agents[0]["detail"] == "code (by model)"
    asked = upstream.requests[0]
    assert asked["model"] == "replies"
    assert asked["max_tokens"] == 8
    assert "- code: Programming questions." in asked["messages"][0]["content"]
    assert "You are the programming specialist." in upstream.requests[1]["messages"][0]["content"]
