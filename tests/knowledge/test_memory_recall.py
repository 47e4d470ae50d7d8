"""The memory check end to end: the 50-fact script told over six sessions of `/chat` on a real
gateway, then every current fact's probe asked on `/v1/chat/completions` in a new conversation.
Each probe's context (what the upstream is sent) must hold its current fact, and no context may
hold a superseded or forgotten one."""

from __future__ import annotations

import httpx

from benchmarks.memory_script import GONE, PROBES, SESSIONS
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.knowledge.test_grounded_chat import grounding


def test_every_current_fact_is_recalled_and_no_superseded_one(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway()
    for number, messages in enumerate(SESSIONS):
        for message in messages:
            resp = httpx.post(
                f"{url}/chat",
                json={"user_id": "ada", "session_id": f"s{number}", "message": message},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
    missed: list[str] = []
    resurfaced: set[str] = set()
    for probe in PROBES:
        resp = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "openai/gpt-test",
                "user": "ada",
                "messages": [{"role": "user", "content": probe.question}],
            },
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        context = grounding(upstream)
        if probe.expect not in context:
            missed.append(f"{probe.question} -> {probe.expect!r} not in {context!r}")
        resurfaced |= {gone for gone in GONE if gone in context}
    assert missed == [], "\n".join(missed)
    assert resurfaced == set()
