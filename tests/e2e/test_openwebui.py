"""OpenWebUI, in a real browser, chatting through the gateway: the way most users meet it.

One module-wide stack of real processes: the project's fake OpenAI-compatible upstream
(deterministic answers), the gateway (`python -m app serve`, with the embedded model enabled as
well), OpenWebUI 0.12 from OPENWEBUI_VENV (offline, no login) and headless Debian Chromium driven
by Playwright. Each test opens a new chat, sends a message as a person would and checks what the
page shows. Screenshots and both servers' logs are kept in E2E_ARTIFACTS (default
data/e2e/openwebui/); each screenshot's path is printed (`pytest -s` shows it).

Skips only when OpenWebUI's venv or Chromium is absent (`scripts/install-test-tools` provides
both, and the `playwright` package). Run: `python -m pytest -m e2e tests/e2e -s`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import harness
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState
from tests.fakes.serve import free_port
from tests.knowledge.files import BOILER

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        harness.missing_prerequisites() is not None,
        reason=harness.missing_prerequisites() or "",
    ),
]

PERSONA = json.loads((harness.ROOT / "persona.json").read_text())["system_prompt"]
TASK_OPENINGS = {
    "title": "### Task:\nGenerate a concise title",
    "follow_ups": "### Task:\nPredict 3-5 useful messages",
    "tags": "### Task:\nGenerate 1-3 broad tags",
}
"""How OpenWebUI 0.12's default background-task prompts begin (open_webui/config.py)."""


@dataclass
class Stack:
    openwebui: str
    gateway: str
    upstream: OpenAIUpstreamState
    browser: Any
    servers: tuple[harness.Started, ...]


@pytest.fixture(scope="module")
def stack(openai_server: tuple[str, OpenAIUpstreamState]) -> Iterator[Stack]:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing: run scripts/install-test-tools")
    upstream_url, state = openai_server
    with tempfile.TemporaryDirectory(prefix="e2e-openwebui-") as tmp:
        root = Path(tmp)
        with (
            harness.gateway(
                root / "gateway",
                free_port(),
                openai_base_url=f"{upstream_url}/v1",
                local=True,
                log=root / "gateway.log",
                # pipeline/agents' agents: the upstream's `team` plays each by its role
                PLANNER_MODEL="openai/team",
                WORKER_MODEL="openai/team",
                CRITIC_MODEL="openai/team",
                SYNTHESIZER_MODEL="openai/team",
            ) as gateway,
            harness.openwebui(
                f"{gateway.url}/v1",
                root / "openwebui",
                free_port(),
                log=root / "openwebui.log",
                DEFAULT_MODELS="openai/gpt-test",
                # as docker-compose starts it: its X-OpenWebUI-* headers bring status events
                ENABLE_FORWARD_USER_INFO_HEADERS="true",
            ) as openwebui,
            harness.browser() as browser,
        ):
            print(f"gateway ready in {gateway.seconds:.1f} s,", end=" ")
            print(f"OpenWebUI in {openwebui.seconds:.1f} s")
            try:
                yield Stack(openwebui.url, gateway.url, state, browser, (gateway, openwebui))
            finally:
                harness.keep_log(gateway, "gateway.log")
                harness.keep_log(openwebui, "openwebui.log")


def chat(stack: Stack, model: str, text: str, shot: str) -> dict[str, Any]:
    """Open a new chat with `model`, send `text`, wait for the reply; screenshot it."""
    try:
        page = harness.open_chat(stack.browser, f"{stack.openwebui}/?models={model}")
        try:
            harness.send(page, text)
            reply = harness.wait_for_reply(page, 1)
            reply["screenshot"] = harness.screenshot(page, shot)
            return reply
        finally:
            page.close()
    except Exception:
        for server in stack.servers:  # a server that died says why
            server.check()
        raise


def test_hello_renders_the_gateways_answer(stack: Stack) -> None:
    reply = chat(stack, "openai/gpt-test", "Hello!", "hello-fake-upstream")
    where = _shown(reply)
    assert reply["errors"] == [], where
    assert reply["toasts"] == [], where
    assert reply["text"] == GREETING, where


def test_hello_with_the_embedded_model(stack: Stack) -> None:
    """The out-of-the-box model has no function calling; OpenWebUI 0.12 still sends its
    native tools with every chat. The user must get an answer, not an error."""
    reply = chat(stack, "local/gemma-3-270m", "Hello!", "hello-local-model")
    where = _shown(reply)
    assert reply["errors"] == [], where
    assert reply["toasts"] == [], where
    assert reply["text"], where


def test_a_cut_stream_shows_a_readable_notice(stack: Stack) -> None:
    """The upstream drops the connection after two words: the words stay, and the notice
    reads as a sentence for a person, not as an aiohttp exception."""
    reply = chat(stack, "openai/cut", "Hello!", "cut-stream")
    where = _shown(reply)
    assert reply["text"].startswith("Hello from"), where
    assert reply["errors"], where
    for leak in ("TransferEncodingError", "payload is not completed", "transfer length"):
        assert all(leak not in error for error in reply["errors"]), where


def test_background_tasks_reach_the_upstream_without_the_persona(stack: Stack) -> None:
    """OpenWebUI's title, follow-up and tag requests are instructions to produce JSON: the
    gateway's persona (a chat assistant's system prompt) must not be added to them."""
    stack.upstream.requests.clear()
    chat(stack, "openai/gpt-test", "Hello!", "background-tasks")
    deadline = time.monotonic() + 60
    while True:
        tasks = {
            kind: [r for r in stack.upstream.requests if _asks(r, opening)]
            for kind, opening in TASK_OPENINGS.items()
        }
        if all(tasks.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(tasks.values()), {kind: len(found) for kind, found in tasks.items()}
    for kind, found in tasks.items():
        for request in found:
            systems = [m for m in request["messages"] if m.get("role") == "system"]
            persona = [m for m in systems if PERSONA in str(m.get("content"))]
            assert not persona, f"the {kind} task was sent with the persona: {persona}"


def test_a_gateway_tool_shows_as_a_status_line_not_in_the_answer(stack: Stack) -> None:
    """The model calls the gateway's calculator: OpenWebUI shows the tool's status above the
    message (its status events), and the answer's text is the model's alone."""
    stack.upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    try:
        reply = chat(stack, "openai/scripted", "What is 6*7?", "tool-status")
    finally:
        stack.upstream.script = []
    where = _shown(reply)
    assert reply["text"] == 'Final: {"expression":"6*7","result":42}', where
    assert reply["status"].startswith("Ran calculator in "), where
    assert reply["errors"] == [], where


def test_a_pipeline_is_a_model_whose_steps_show_as_status_lines(stack: Stack) -> None:
    """pipeline/agents, picked like any model: OpenWebUI shows its steps as status lines above
    the answer (the last one, the synthesizer's end, stays), and the answer is the synthesizer's
    alone."""
    stack.upstream.plans = ['{"subtasks": [{"task": "find A"}, {"task": "find B"}]}']
    try:
        reply = chat(stack, "pipeline/agents", "Compare A and B", "pipeline-status")
    finally:
        stack.upstream.plans = []
    where = _shown(reply)
    assert reply["text"] == "Answer from 2 findings.", where
    assert reply["status"].startswith("synthesizer done in "), where
    assert reply["errors"] == [], where
    steps = [str(r["messages"][0].get("content", ""))[:40] for r in stack.upstream.requests]
    assert sum("worker" in step for step in steps) >= 2, steps


def _shown(reply: dict[str, Any]) -> str:
    return (
        f"OpenWebUI showed text {reply['text']!r}, status {reply['status']!r}, "
        f"error notices {reply['errors']!r}, "
        f"error toasts {reply['toasts']!r} (screenshot {reply['screenshot']})"
    )


def _asks(request: dict[str, Any], opening: str) -> bool:
    return any(
        m.get("role") == "user" and str(m.get("content", "")).startswith(opening)
        for m in request.get("messages") or []
    )


def test_passages_of_the_users_documents_show_as_citations(stack: Stack) -> None:
    """A document uploaded to the gateway grounds the chat: OpenWebUI shows the passages as its
    citation chips under the answer, and the model's [1] as a link to the first."""
    upload = httpx.post(
        f"{stack.gateway}/v1/documents",
        files={"file": ("boiler.md", BOILER)},
        headers={"Authorization": f"Bearer {harness.GATEWAY_KEY}"},
        timeout=60,
    )
    assert upload.status_code in (200, 201), upload.text
    page = harness.open_chat(stack.browser, f"{stack.openwebui}/?models=openai/gpt-test")
    try:
        harness.send(page, "How long is the boiler warranty? echo: Seven years [1].")
        reply = harness.wait_for_reply(page, 1)
        chips = page.locator(".chat-assistant").first.locator("button", has_text="boiler.md")
        chips.first.wait_for(timeout=10_000)
        labels = [t.strip() for t in chips.all_inner_texts()]
        page.get_by_role("button", name="Sources").first.click()  # the list of chips opens
        reply["screenshot"] = harness.screenshot(page, "rag-citations")
    finally:
        page.close()
    where = _shown(reply) + f", chips {labels!r}"
    assert reply["errors"] == [], where
    assert reply["text"].startswith("Seven years"), where
    assert any("boiler.md" in label for label in labels), where
