"""Pipelines of PIPELINES_FILE through a real gateway: steps at once when they can, function
steps, the results of earlier steps in the prompts of later ones, the last step answering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.test_sessions import events
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

FILE = """\
pipelines:
  - id: brief
    description: Two drafts, counted, then an answer
    steps:
      - name: draft-a
        prompt: Draft A.
        model: openai/gpt-test
        after: []
      - name: draft-b
        prompt: Draft B.
        model: openai/gpt-test
        after: []
      - name: count
        function: tests.pipelines.steps:count_words
        after: [draft-a, draft-b]
      - name: answer
        prompt: Answer from the drafts.
        after: [draft-a, count]
  - id: loud
    steps:
      - name: shout
        function: tests.pipelines.steps:shout
  - id: broken
    steps:
      - name: fail
        function: tests.pipelines.steps:broken
      - name: answer
        prompt: never asked
"""


@pytest.fixture
def gateway(make_gateway: MakeGateway, tmp_path: Path) -> str:
    path = tmp_path / "pipelines.yaml"
    path.write_text(FILE)
    return make_gateway(default_model="openai/gpt-test", pipelines_file=path)


def execute(url: str, pipeline: str, **body: object) -> httpx.Response:
    body.setdefault("input", "make it brief")
    return httpx.post(f"{url}/pipelines/{pipeline}/execute", json=body, timeout=30)


def test_listed_as_pipelines_and_models(gateway: str) -> None:
    listed = {p["id"]: p for p in httpx.get(f"{gateway}/pipelines").json()["data"]}
    assert set(listed) == {"agents", "rag-qa", "brief", "loud", "broken", "router"}
    brief = listed["brief"]
    assert brief["description"] == "Two drafts, counted, then an answer"
    assert [s["kind"] for s in brief["steps"]] == ["agent", "agent", "function", "agent"]
    assert brief["models"] == ["openai/gpt-test", "openai/gpt-test", "default"]
    models = [m["id"] for m in httpx.get(f"{gateway}/v1/models").json()["data"]]
    assert {"pipeline/brief", "pipeline/loud", "pipeline/broken"} <= set(models)


def test_steps_run_in_order_and_feed_the_answer(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    resp = execute(gateway, "brief")
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["answer"] == GREETING
    names = [step["name"] for step in result["agents"]]
    assert sorted(names[:2]) == ["draft-a", "draft-b"]
    assert names[2:] == ["count", "answer"]
    final = upstream.requests[-2]["messages"]  # the last: the follow-up questions
    assert final[0]["content"].endswith(  # after the persona: the answer is the gateway's
        "\n\nAnswer from the drafts.\n\nResults of earlier steps:\n"
        f"### draft-a\n{GREETING}\n\n### count\n10 words"
    )
    assert final[-1] == {"role": "user", "content": "make it brief"}
    drafts = upstream.requests[:2]  # steps' words are not the answer: no persona
    assert sorted(r["messages"][0]["content"] for r in drafts) == ["Draft A.", "Draft B."]


def test_a_function_may_answer(gateway: str) -> None:
    result = execute(gateway, "loud").json()
    assert result["answer"] == "MAKE IT BRIEF"
    assert [s["name"] for s in result["agents"]] == ["shout"]
    _, found = events(gateway, {"input": "hi", "stream": True}, path="/pipelines/loud/execute")
    assert [data["text"] for name, data in found if name == "token"] == ["HI"]


def test_a_failing_step_is_a_502_or_an_error_event(gateway: str) -> None:
    resp = execute(gateway, "broken")
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "pipeline_step_failed"
    assert error["message"] == "step 'fail' failed: RuntimeError: this step always fails"
    resp, found = events(gateway, {"input": "x", "stream": True}, path="/pipelines/broken/execute")
    assert found[-1][0] == "error"
    assert found[-1][1]["code"] == "pipeline_step_failed"


def test_a_malformed_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text("pipelines:\n  - id: a\n    steps:\n      - name: a\n        prompt: x\n"
                    "        after: [b]\n")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", "1"],
        env={"PIPELINES_FILE": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"ai-gateway: {path}, line 6: step 'a' comes after 'b', which is not a step before it"
    )
