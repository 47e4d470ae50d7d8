"""The `agents` pipeline through a real gateway: planner → workers → critic → synthesizer, played
by the fake upstream's `team` model, which answers each agent by the role its system prompt
names."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from app.pipelines.agents import NO_PLAN
from tests.api.sse import sse_events
from tests.api.test_sessions import events
from tests.conftest import MakeGateway, answer_recorded
from tests.fakes.openai_upstream import OpenAIUpstreamState

TEAM = "openai/team"
THREE = '{"subtasks": [{"task": "find A"}, {"task": "find B"}, {"task": "find C", "needs": "B"}]}'


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> str:
    return make_gateway(default_model=TEAM)


def execute(url: str, pipeline: str = "agents", **body: Any) -> httpx.Response:
    body.setdefault("input", "Compare A, B and C")
    return httpx.post(f"{url}/pipelines/{pipeline}/execute", json=body, timeout=30)


def roles(upstream: OpenAIUpstreamState) -> list[str]:
    """The agent each upstream request was for, in order."""
    found = []
    for request in upstream.requests:
        first = request["messages"][0]
        system = first["content"] if first["role"] == "system" else ""
        for role in ("planner", "critic", "final answer", "worker", "follow-up"):
            if role in system:
                found.append(role)
                break
    return found


def asked(upstream: OpenAIUpstreamState, role: str) -> list[dict[str, Any]]:
    """The upstream requests for `role`'s agent."""
    return [r for r, was in zip(upstream.requests, roles(upstream), strict=True) if was == role]


def ended(result: dict[str, Any]) -> list[str]:
    return [step["name"] for step in result["agents"]]


def test_listed_with_steps_and_models(gateway: str) -> None:
    listed = httpx.get(f"{gateway}/pipelines").json()["data"]
    agents = next(p for p in listed if p["id"] == "agents")
    assert agents["model"] == "pipeline/agents"
    assert [s["name"] for s in agents["steps"]] == ["planner", "worker", "critic", "synthesizer"]
    assert agents["models"] == ["default"] * 4
    assert httpx.get(f"{gateway}/v1/pipelines/agents").json()["id"] == "agents"
    models = httpx.get(f"{gateway}/v1/models").json()["data"]
    assert "pipeline/agents" in [m["id"] for m in models]
    assert httpx.get(f"{gateway}/v1/models/pipeline/agents").json()["owned_by"] == "pipeline"


def test_plan_work_check_and_answer(gateway: str, upstream: OpenAIUpstreamState) -> None:
    upstream.plans = [THREE]
    resp = execute(gateway)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["pipeline"] == "agents"
    assert result["answer"] == "Answer from 3 findings."
    assert result["model"] == "pipeline/agents"
    assert ended(result) == ["planner", "worker", "worker", "worker", "critic", "synthesizer"]
    assert result["agents"][0]["detail"] == "3 subtasks"
    assert sorted(s["detail"] for s in result["agents"][1:4]) == ["find A", "find B", "find C"]
    assert all(step["duration_ms"] > 0 and step["tokens"] > 0 for step in result["agents"])
    assert result["usage"]["total_tokens"] == sum(s["tokens"] for s in result["agents"])
    assert len(result["suggestions"]) == 3
    assert result["timings"]["total_ms"] >= result["timings"]["ttft_ms"] > 0
    assert roles(upstream) == ["planner", *["worker"] * 3, "critic", "final answer", "follow-up"]
    worker = upstream.requests[1]["messages"]
    assert "Compare A, B and C" in worker[-1]["content"]
    critic = upstream.requests[4]["messages"][-1]["content"]
    assert "Did: find A" in critic
    assert "Did: find C" in critic
    final = upstream.requests[5]["messages"]
    assert "Findings:" in final[0]["content"]
    assert final[-1] == {"role": "user", "content": "Compare A, B and C"}
    planner = upstream.requests[0]
    assert planner["response_format"]["type"] == "json_schema"
    assert planner["max_tokens"] == 400


def test_a_bad_plan_is_asked_again_once(gateway: str, upstream: OpenAIUpstreamState) -> None:
    upstream.plans = ["not json at all", THREE]
    result = execute(gateway).json()
    assert result["answer"] == "Answer from 3 findings."
    assert roles(upstream)[:2] == ["planner", "planner"]
    again = upstream.requests[1]["messages"]
    assert again[-2] == {"role": "assistant", "content": "not json at all"}
    assert again[-1]["content"].startswith("That plan is not valid:")
    assert result["agents"][0]["name"] == "planner"


def test_no_plan_after_two_tries_answers_directly(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    upstream.plans = ['{"subtasks": []}', '{"steps": "nope"}']
    result = execute(gateway).json()
    assert result["answer"] == "Answer from 0 findings."
    assert ended(result) == ["planner", "synthesizer"]
    assert result["agents"][0]["detail"] == NO_PLAN
    assert "critic" not in roles(upstream)
    assert "worker" not in roles(upstream)


def test_the_critic_sends_work_back_at_most_once(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    upstream.plans = [THREE]
    revise = '{"verdict": "revise", "feedback": "B is wrong", "revise": [2]}'
    upstream.verdicts = [revise, revise]
    result = execute(gateway).json()
    assert ended(result) == ["planner", *["worker"] * 3, "critic", "worker", "synthesizer"]
    assert result["agents"][4]["detail"] == "sent back: B is wrong"
    redo = upstream.requests[5]
    assert "Your subtask: find B" in redo["messages"][-1]["content"]
    assert "sent back by the critic: B is wrong" in redo["messages"][-1]["content"]
    assert roles(upstream).count("critic") == 1


def test_workers_use_only_the_tools_their_subtask_names(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(default_model=TEAM, enabled_tools=["calculator", "time"])
    upstream.plans = ['{"subtasks": [{"task": "add", "tools": ["calculator"]}, {"task": "think"}]}']
    resp, found = events(url, {"input": "2+2?", "stream": True}, path="/pipelines/agents/execute")
    assert resp.status_code == 200
    names = [name for name, _ in found]
    assert names.count("tool_call_started") == names.count("tool_call_completed") == 1
    done = found[-1][1]
    assert done["fullText"] == "Answer from 2 findings."
    workers = [
        r for r, role in zip(upstream.requests, roles(upstream), strict=True) if role == "worker"
    ]
    offered = [[t["function"]["name"] for t in r.get("tools") or []] for r in workers]
    assert ["calculator"] in offered
    assert [] in offered
    assert all("time" not in names for names in offered)
    planner = upstream.requests[0]["messages"][0]["content"]
    assert "calculator, time" in planner


def test_a_plan_naming_an_unknown_tool_is_asked_again(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    upstream.plans = ['{"subtasks": [{"task": "x", "tools": ["rm_rf"]}]}']
    execute(gateway)
    again = upstream.requests[1]["messages"][-1]["content"]
    assert "unknown tools ['rm_rf']" in again


def test_stream_has_agent_events_and_done_timings(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    resp, found = events(gateway, {"userId": "u1", "prompt": "Compare", "model": "pipeline/agents"})
    assert resp.status_code == 200
    agent = [data for name, data in found if name == "agent"]
    phases = [(a["name"], a["phase"]) for a in agent]
    assert phases[1:3] == [("planner", "start"), ("planner", "end")]
    assert ("synthesizer", "end") in phases
    done = found[-1][1]
    assert found[-1][0] == "done"
    assert done["fullText"] == "Answer from 1 findings."
    assert [a["name"] for a in done["agents"]] == ["planner", "worker", "critic", "synthesizer"]
    assert done["suggestions"] == ["Is it fast?", "Is it safe?", "Is it cheap?"]
    assert roles(upstream).count("follow-up") == 1  # the pipeline's; the session asks none
    metrics = httpx.get(f"{gateway}/v1/metrics/{done['sessionId']}").json()
    turn = metrics["last"]
    assert [a["name"] for a in turn["agents"]] == ["planner", "worker", "critic", "synthesizer"]
    assert turn["model"] == "pipeline/agents"
    assert metrics["agents"]["worker"]["count"] == 1
    assert metrics["agents"]["planner"]["p50"] > 0


def test_a_run_for_a_user_is_kept_in_their_session(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    first = execute(gateway, user_id="ann", session_id="s-ann").json()
    assert first["session_id"] == "s-ann"
    execute(gateway, user_id="ann", session_id="s-ann", input="And D?")
    messages = httpx.get(f"{gateway}/v1/sessions/s-ann/messages").json()["data"]
    assert [m["content"] for m in messages] == [
        "Compare A, B and C",
        "Answer from 1 findings.",
        "And D?",
        "Answer from 1 findings.",
    ]
    planner = [
        r for r, role in zip(upstream.requests, roles(upstream), strict=True) if role == "planner"
    ]
    assert "Compare A, B and C" in str(planner[-1]["messages"])  # the conversation so far


def test_chat_completions_runs_the_pipeline(gateway: str, upstream: OpenAIUpstreamState) -> None:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="x", max_retries=0) as sdk:
        answer = sdk.chat.completions.create(
            model="pipeline/agents", messages=[{"role": "user", "content": "Compare"}]
        )
        assert answer.choices[0].message.content == "Answer from 1 findings."
        assert answer.model == "pipeline/agents"
        assert answer.usage is not None
        assert answer.usage.total_tokens > 0
        stream = sdk.chat.completions.create(
            model="pipeline/agents",
            messages=[{"role": "user", "content": "Compare"}],
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Answer from 1 findings."
    assert "follow-up" not in roles(upstream)  # no caller shows them


def test_openwebui_sees_each_step_as_a_status(gateway: str) -> None:
    body = {
        "model": "pipeline/agents",
        "messages": [{"role": "user", "content": "Compare"}],
        "stream": True,
    }
    with httpx.stream(
        "POST",
        f"{gateway}/v1/chat/completions",
        json=body,
        headers={"X-OpenWebUI-User-Id": "u1"},
        timeout=30,
    ) as resp:
        lines = [line for line in resp.iter_lines() if line.startswith("data: {")]
    statuses = [
        json.loads(line[6:])["event"]["data"]
        for line in lines
        if '"event"' in line and '"status"' in line
    ]
    said = [s["description"] for s in statuses]
    assert said[0] == "planner…"
    assert any(s.startswith("planner: 1 subtask in") for s in said)
    assert any(s.startswith("synthesizer done in") for s in said)
    assert statuses[-1]["done"] is True


def test_background_tasks_of_a_pipeline_chat_go_to_a_model(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    title = "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat"
    resp = httpx.post(
        f"{gateway}/v1/chat/completions",
        json={"model": "pipeline/agents", "messages": [{"role": "user", "content": title}]},
        headers={"X-OpenWebUI-Task": "title_generation"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert roles(upstream) == []  # no agent ran: the model answered the task as sent


def test_unknown_pipeline_is_a_404(gateway: str) -> None:
    resp = execute(gateway, pipeline="nope")
    assert resp.status_code == 404
    assert "GET /pipelines lists them" in resp.json()["error"]["message"]
    resp = httpx.post(
        f"{gateway}/v1/chat/completions",
        json={"model": "pipeline/nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "model_not_found"


def test_bad_execute_bodies_are_400s(gateway: str) -> None:
    for body in ({}, {"input": ""}, {"input": 3}, {"input": "x", "session_id": "../x"}):
        resp = httpx.post(f"{gateway}/pipelines/agents/execute", json=body)
        assert resp.status_code == 400, body
        assert resp.json()["error"]["type"] == "invalid_request_error"
    resp = httpx.post(f"{gateway}/pipelines/agents/execute", content=b"{nope")
    assert resp.status_code == 400


def test_each_agent_asks_its_own_model(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(
        default_model="openai/gpt-test",
        planner_model=TEAM,
        worker_model=TEAM,
        critic_model=TEAM,
        synthesizer_model=TEAM,
    )
    listed = httpx.get(f"{url}/pipelines/agents").json()
    assert listed["models"] == [TEAM] * 4
    result = execute(url).json()
    assert result["answer"] == "Answer from 1 findings."
    assert {r["model"] for r in upstream.requests} == {"team"}


def test_sse_chat_chunks_are_valid(gateway: str) -> None:
    resp, chunks = sse_events(
        gateway,
        {
            "model": "pipeline/agents",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        },
    )
    assert resp.status_code == 200
    assert chunks[-1] == "[DONE]"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c.get("choices")]
    assert finishes[-1] == "stop"


def test_what_a_pipeline_cannot_do_is_a_400(gateway: str) -> None:
    chat = {"model": "pipeline/agents", "messages": [{"role": "user", "content": "x"}], "n": 2}
    resp = httpx.post(f"{gateway}/v1/chat/completions", json=chat, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "n"
    raw = {"model": "pipeline/agents", "prompt": "Once upon a time"}
    resp = httpx.post(f"{gateway}/v1/completions", json=raw, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == (
        "pipeline/agents answers chats: ask it on /v1/chat/completions"
    )


def test_a_pipelines_answer_is_rated_as_the_pipelines(gateway: str, redis_url: str) -> None:
    body = {"model": "pipeline/agents", "messages": [{"role": "user", "content": "Compare"}]}
    answer = httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=30).json()
    message_id = answer_recorded(redis_url, answer["id"])
    rated = httpx.post(
        f"{gateway}/v1/feedback", json={"message_id": message_id, "rating": -1}, timeout=20
    ).json()
    assert (rated["model"], rated["pipeline"]) == ("pipeline/agents", "agents")
    vitals = httpx.get(f"{gateway}/v1/vitals", timeout=20).json()["feedback"]
    assert vitals["pipelines"]["agents"] == {"up": 0, "down": 1, "count": 1, "positive_share": 0.0}
    metrics = httpx.get(f"{gateway}/metrics", timeout=20).text
    assert (
        'gateway_feedback_total{model="pipeline/agents",pipeline="agents",rating="down"} 1.0'
        in metrics
    )
