"""The response, tool and intent caches through a real gateway, driven by the `openai` SDK and
httpx; the cache endpoints; and a Redis that dies and comes back while the gateway runs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from openai.types.chat import ChatCompletionMessageParam

from app.tools.context import Register, ToolContext
from tests.api.sse import sse_events
from tests.conftest import MakeGateway, start_redis
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
JOKE: list[ChatCompletionMessageParam] = [{"role": "user", "content": "tell me a joke"}]
RUNS: list[str] = []


async def count(word: str) -> str:
    """Counts its runs."""
    RUNS.append(word)
    return f"counted {word}"


def counting_tools(register: Register, context: ToolContext) -> None:
    register(count)


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def ask(url: str, **body: Any) -> httpx.Response:
    body = {"model": "openai/gpt-test", "messages": USER, **body}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def content(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    text: str = resp.json()["choices"][0]["message"]["content"]
    return text


def streamed(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)


def test_an_identical_temperature_0_request_is_answered_from_the_cache(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    sdk = client(gateway).chat.completions.with_raw_response
    first = sdk.create(model="openai/gpt-test", messages=USER, temperature=0)
    second = sdk.create(model="openai/gpt-test", messages=USER, temperature=0)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert len(upstream.requests) == 1
    a, b = first.parse(), second.parse()
    assert b.choices[0].message.content == a.choices[0].message.content == GREETING
    assert b.id != a.id
    assert b.id.startswith("chatcmpl-")
    assert b.model == "openai/gpt-test"
    assert b.usage == a.usage
    assert b.choices[0].finish_reason == "stop"


def test_a_stream_hit_replays_sse_the_sdk_parses(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    sdk = client(gateway).chat.completions
    texts, usages = [], []
    for expected in ("miss", "hit"):
        raw = sdk.with_raw_response.create(
            model="openai/gpt-test",
            messages=USER,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        assert raw.headers["x-cache"] == expected
        chunks = list(raw.parse())
        texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-2].choices[0].finish_reason == "stop"
        assert len({c.id for c in chunks}) == 1
        usages.append(chunks[-1].usage)
    assert texts == [GREETING, GREETING]
    assert usages[0] == usages[1]
    assert usages[0] is not None
    assert len(upstream.requests) == 1
    resp, events = sse_events(
        gateway, {"model": "openai/gpt-test", "messages": USER, "temperature": 0, "stream": True}
    )
    assert resp.headers["x-cache"] == "hit"
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])


def test_cache_true_caches_a_sampled_request_and_is_not_sent_upstream(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    first, second = (ask(gateway, temperature=0.7, cache=True) for _ in range(2))
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert content(first) == content(second)
    (sent,) = upstream.requests
    assert "cache" not in sent


def test_sampled_and_opted_out_requests_are_not_cached(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    for body in ({"temperature": 0.7}, {}, {"temperature": 0, "cache": False}, {"n": 2}):
        for _ in range(2):
            resp = ask(gateway, **body)
            assert resp.status_code == 200
            assert "x-cache" not in resp.headers
    assert len(upstream.requests) == 8
    assert "cache" not in upstream.requests[5]
    stats = httpx.get(f"{gateway}/cache/stats").json()["llm"]
    assert (stats["hits"], stats["misses"], stats["keys"]) == (0, 0, 0), "Redis was not asked"


def test_a_different_request_misses(gateway: str, upstream: OpenAIUpstreamState) -> None:
    assert ask(gateway, temperature=0).headers["x-cache"] == "miss"
    other = [{"role": "user", "content": "echo: something else"}]
    resp = ask(gateway, temperature=0, messages=other)
    assert resp.headers["x-cache"] == "miss"
    assert content(resp) == "something else"
    assert ask(gateway, temperature=0, max_tokens=2).headers["x-cache"] == "miss"
    assert ask(gateway, temperature=0, model="openai/tool-model").headers["x-cache"] == "miss"
    assert ask(gateway, temperature=0).headers["x-cache"] == "hit"
    assert len(upstream.requests) == 4


def test_a_streamed_miss_serves_a_plain_hit_and_the_other_way_round(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    body = {"model": "openai/gpt-test", "temperature": 0, "user": "a"}
    resp, events = sse_events(gateway, {**body, "messages": USER, "stream": True})
    assert resp.headers["x-cache"] == "miss"
    plain = ask(gateway, **{**body, "user": "b"})
    assert plain.headers["x-cache"] == "hit"
    assert content(plain) == streamed(events) == GREETING

    other = [{"role": "user", "content": "echo: the other way"}]
    assert content(ask(gateway, temperature=0, messages=other)) == "the other way"
    resp, events = sse_events(gateway, {**body, "messages": other, "stream": True})
    assert resp.headers["x-cache"] == "hit"
    assert streamed(events) == "the other way"
    assert events[-1] == "[DONE]"
    assert len(upstream.requests) == 2


def test_client_tool_calls_are_cached_and_replayed(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    sdk = client(gateway).chat.completions
    body: dict[str, Any] = {
        "model": "openai/tool-model",
        "messages": USER,
        "tools": [tool],
        "temperature": 0,
    }
    first = sdk.create(**body).choices[0]
    fragments = [
        call
        for chunk in sdk.create(**body, stream=True)
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
    ]
    assert len(upstream.requests) == 1
    assert first.finish_reason == "tool_calls"
    (call,) = first.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert {fragment.index for fragment in fragments} == {0}
    assert [f.id for f in fragments if f.id] == [call.id]
    assert "".join(f.function.name or "" for f in fragments if f.function) == "get_weather"
    arguments = "".join(f.function.arguments or "" for f in fragments if f.function)
    assert arguments == call.function.arguments


def test_errors_and_cut_streams_are_not_cached(gateway: str, upstream: OpenAIUpstreamState) -> None:
    for _ in range(2):
        resp = ask(gateway, temperature=0, model="openai/bad-request")
        assert resp.status_code == 400
    assert len(upstream.requests) == 2
    for _ in range(2):
        _, events = sse_events(
            gateway,
            {"model": "openai/cut", "messages": USER, "temperature": 0, "stream": True},
        )
        assert "error" in events[-2]
    assert len(upstream.requests) == 4
    stats = httpx.get(f"{gateway}/cache/stats").json()["llm"]
    assert (stats["hits"], stats["misses"], stats["keys"]) == (0, 4, 0)


def test_the_tool_cache_runs_a_tool_once_for_identical_calls(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    RUNS.clear()
    url = make_gateway(
        tool_plugins=[counting_tools], enabled_tools=["count"], tool_cache_ttl=["count=60"]
    )
    upstream.script = [[("count", '{"word": "a"}')], [("count", '{"word": "a"}')]]
    sdk = client(url).chat.completions
    completion = sdk.create(model="openai/scripted", messages=[{"role": "user", "content": "go"}])
    assert completion.choices[0].message.content == "Final: counted a | counted a"
    assert RUNS == ["a"]
    sdk.create(model="openai/scripted", messages=[{"role": "user", "content": "again"}])
    assert RUNS == ["a"]
    stats = httpx.get(f"{url}/cache/stats").json()
    assert (stats["tools"]["hits"], stats["tools"]["misses"], stats["tools"]["keys"]) == (3, 1, 1)
    assert stats["llm"]["hits"] + stats["llm"]["misses"] == 0
    direct = httpx.post(f"{url}/v1/tools/count", json={"word": "a"}).json()
    assert direct["result"] == "counted a"
    assert RUNS == ["a"]
    assert httpx.delete(f"{url}/cache/invalidate/tools").json() == {"invalidated": 1}
    httpx.post(f"{url}/v1/tools/count", json={"word": "a"})
    assert RUNS == ["a", "a"]


def test_a_tool_without_a_ttl_is_not_cached(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    RUNS.clear()
    url = make_gateway(tool_plugins=[counting_tools], enabled_tools=["count"])
    for _ in range(2):
        httpx.post(f"{url}/v1/tools/count", json={"word": "a"})
    assert RUNS == ["a", "a"]


def test_a_tool_loop_answer_is_cached_no_longer_than_its_tool_results(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, redis_url: str
) -> None:
    RUNS.clear()
    url = make_gateway(
        tool_plugins=[counting_tools], enabled_tools=["count"], tool_cache_ttl=["count=60"]
    )
    upstream.script = [[("count", '{"word": "b"}')]]
    body = {"model": "openai/scripted", "messages": [{"role": "user", "content": "go"}]}
    first = ask(url, **body, temperature=0)
    second = ask(url, **body, temperature=0)
    assert second.headers["x-cache"] == "hit"
    assert content(second) == content(first) == "Final: counted b"
    assert second.json()["tools_used"] == first.json()["tools_used"]
    assert second.json()["tools_used"][0]["name"] == "count"
    assert RUNS == ["b"]
    resp, events = sse_events(url, {**body, "temperature": 0, "stream": True})
    assert resp.headers["x-cache"] == "hit"
    assert streamed(events) == "Final: counted b"
    assert len(upstream.requests) == 2
    with redis.Redis.from_url(redis_url) as client:
        (key,) = client.keys("cache:llm:*")
        assert 0 < client.pttl(key) <= 60_000


@pytest.mark.parametrize(
    ("ttls", "arguments"),
    [([], '{"word": "d"}'), (["count=60"], '{"word": 5}')],
    ids=["tool-not-cached", "tool-failed"],
)
def test_a_tool_loop_answer_is_not_cached_when_a_tool_is_not_or_failed(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, ttls: list[str], arguments: str
) -> None:
    url = make_gateway(tool_plugins=[counting_tools], enabled_tools=["count"], tool_cache_ttl=ttls)
    upstream.script = [[("count", arguments)]]
    for _ in range(2):
        resp = ask(url, model="openai/scripted", temperature=0)
        assert resp.headers["x-cache"] == "miss"
    assert len(upstream.requests) == 4


def test_a_streamed_tool_loop_answer_replays_its_status_lines(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    """The cache keeps events, not one wire's bytes: a hit's stream shows the tools' status
    lines as the miss's did, and a plain hit lists the tools instead."""
    url = make_gateway(
        tool_plugins=[counting_tools],
        enabled_tools=["count"],
        tool_cache_ttl=["count=60"],
        tool_activity_in_content=True,
    )
    upstream.script = [[("count", '{"word": "c"}')]]
    body = {"model": "openai/scripted", "messages": USER, "temperature": 0}
    texts = []
    for status in ("miss", "hit"):
        resp, events = sse_events(url, {**body, "stream": True})
        assert resp.headers["x-cache"] == status
        texts.append(streamed(events))
    assert texts[0] == texts[1]
    assert texts[0].startswith("> Running tool: count\n\n")
    plain = ask(url, **body)
    assert plain.headers["x-cache"] == "hit"
    assert "Running tool" not in content(plain)
    assert [t["name"] for t in plain.json()["tools_used"]] == ["count"]
    assert len(upstream.requests) == 2


def test_a_streamed_tool_loop_answer_without_status_lines_is_stored(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(
        tool_plugins=[counting_tools],
        enabled_tools=["count"],
        tool_cache_ttl=["count=60"],
    )
    upstream.script = [[("count", '{"word": "e"}')]]
    body = {"model": "openai/scripted", "messages": USER, "temperature": 0}
    resp, events = sse_events(url, {**body, "stream": True})
    assert resp.headers["x-cache"] == "miss"
    assert streamed(events) == "Final: counted e"
    plain = ask(url, **body)
    assert plain.headers["x-cache"] == "hit"
    assert content(plain) == "Final: counted e"
    assert [t["name"] for t in plain.json()["tools_used"]] == ["count"]
    assert len(upstream.requests) == 2


def test_the_models_tool_choice_is_cached_per_message(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"], tool_detection="model")
    upstream.classification = '{"tool": "calculator", "arguments": {"expression": "90*2"}}'
    messages = [{"role": "user", "content": "double ninety for me"}]
    for _ in range(2):
        assert "180" in content(ask(url, model="openai/no-tools", messages=messages))
    upstream.classification = "I would not use a tool."
    for _ in range(2):
        joke = content(ask(url, model="openai/no-tools", messages=JOKE))
        assert joke == "You said: tell me a joke"
    questions = [r for r in upstream.requests if "Reply with JSON only" in str(r["messages"][0])]
    assert len(questions) == 2
    stats = httpx.get(f"{url}/cache/stats").json()["intent"]
    assert (stats["hits"], stats["misses"], stats["keys"]) == (2, 2, 2)
    assert httpx.delete(f"{url}/cache/invalidate/intent").json() == {"invalidated": 2}
    content(ask(url, model="openai/no-tools", messages=JOKE))
    questions = [r for r in upstream.requests if "Reply with JSON only" in str(r["messages"][0])]
    assert len(questions) == 3


def test_stats_and_invalidation_of_responses(gateway: str, upstream: OpenAIUpstreamState) -> None:
    for _ in range(3):
        ask(gateway, temperature=0)
    ask(gateway, temperature=0, messages=[{"role": "user", "content": "other"}])
    stats = httpx.get(f"{gateway}/cache/stats").json()
    assert stats["llm"]["hits"] == 2
    assert stats["llm"]["misses"] == 2
    assert stats["llm"]["hit_rate"] == 0.5
    assert stats["llm"]["keys"] == 2
    assert stats["llm"]["memory_bytes"] > 0
    assert set(stats) == {"llm", "tools", "intent"}
    resp = httpx.delete(f"{gateway}/cache/invalidate/llm")
    assert resp.json() == {"invalidated": 2}
    assert httpx.delete(f"{gateway}/cache/invalidate/llm").json() == {"invalidated": 0}
    assert ask(gateway, temperature=0).headers["x-cache"] == "miss"
    assert len(upstream.requests) == 3
    wrong = httpx.delete(f"{gateway}/cache/invalidate/everything")
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "name"


def test_invalidation_needs_an_admin_key(make_gateway: MakeGateway) -> None:
    """An ordinary key is refused with 403 (whatever the cache's name), no key with 401; a key of
    ADMIN_API_KEYS invalidates. Stats and health stay open to every key."""
    url = make_gateway(api_keys=["user-key"], admin_api_keys=["admin-key"])
    user, admin = ({"Authorization": f"Bearer {key}"} for key in ("user-key", "admin-key"))
    for name in ("llm", "everything"):
        refused = httpx.delete(f"{url}/cache/invalidate/{name}", headers=user)
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "permission_denied"
        assert "admin key" in error["message"]
    assert httpx.delete(f"{url}/cache/invalidate/llm").status_code == 401
    resp = httpx.delete(f"{url}/cache/invalidate/llm", headers=admin)
    assert (resp.status_code, resp.json()) == (200, {"invalidated": 0})
    bad = httpx.delete(f"{url}/cache/invalidate/everything", headers=admin)
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "name")
    for path in ("/cache/stats", "/cache/health"):
        assert httpx.get(f"{url}{path}", headers=user).status_code == 200


def test_cache_health(gateway: str) -> None:
    resp = httpx.get(f"{gateway}/cache/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "up"
    assert resp.json()["latency_ms"] >= 0


def test_llm_cache_ttl_0_turns_the_response_cache_off(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(llm_cache_ttl=0)
    for _ in range(2):
        assert "x-cache" not in ask(url, temperature=0, cache=True).headers
    assert len(upstream.requests) == 2


def test_redis_dying_mid_flight_bypasses_the_cache_until_it_is_back(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path)
    try:
        url = make_gateway(redis_url=f"unix://{tmp_path}/redis.sock")
        assert [ask(url, temperature=0).headers["x-cache"] for _ in range(2)] == ["miss", "hit"]
        redis.kill()
        redis.wait(10)
        for stream in (False, True, False):
            if stream:
                resp, events = sse_events(
                    url,
                    {
                        "model": "openai/gpt-test",
                        "messages": USER,
                        "temperature": 0,
                        "stream": True,
                    },
                )
                assert streamed(events) == GREETING
            else:
                resp = ask(url, temperature=0)
                assert content(resp) == GREETING
            assert resp.headers["x-cache"] == "bypass"
        assert ask(url).status_code == 200
        assert len(upstream.requests) == 5
        eventually(lambda: httpx.get(f"{url}/health").json()["status"] == "degraded")
        assert httpx.get(f"{url}/health").status_code == 200
        down = httpx.get(f"{url}/cache/health")
        assert (down.status_code, down.json()["status"]) == (503, "down")
        stats = httpx.get(f"{url}/cache/stats")
        assert stats.status_code == 503
        assert stats.json()["error"]["code"] == "cache_unavailable"
        assert httpx.delete(f"{url}/cache/invalidate/llm").status_code == 503

        redis = start_redis(tmp_path)
        eventually(lambda: ask(url, temperature=0).headers["x-cache"] != "bypass")
        fresh = [{"role": "user", "content": "echo: back again"}]
        statuses = [ask(url, temperature=0, messages=fresh).headers["x-cache"] for _ in range(2)]
        assert statuses == ["miss", "hit"]
        assert httpx.get(f"{url}/cache/health").json()["status"] == "up"
        eventually(lambda: httpx.get(f"{url}/health").json()["status"] == "ok")
    finally:
        redis.terminate()
        redis.wait(10)


@pytest.mark.parametrize("path", ["/cache/health", "/cache/stats"])
def test_cache_endpoints_are_documented(gateway: str, path: str) -> None:
    schema = httpx.get(f"{gateway}/openapi.json").json()
    assert path in schema["paths"]


def _same_but_id(raw: bytes) -> bytes:
    """`raw` with the response's id and creation time blanked: a hit is a new response."""
    raw = re.sub(rb'"id":"chatcmpl-[^"]+"', b'"id":"-"', raw)
    return re.sub(rb'"created":\d+', b'"created":0', raw)


@pytest.mark.parametrize("stream", [True, False])
def test_a_hit_sends_the_bytes_of_the_miss(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, stream: bool
) -> None:
    url = make_gateway(
        tool_plugins=[counting_tools],
        enabled_tools=["count"],
        tool_cache_ttl=["count=60"],
        tool_activity_in_content=True,
    )
    upstream.script = [[("count", '{"word": "f"}')]]
    body = {
        "model": "openai/scripted",
        "messages": USER,
        "temperature": 0,
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
    }
    sent = []
    for status in ("miss", "hit"):
        resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        assert resp.headers["x-cache"] == status
        sent.append(_same_but_id(resp.content))
    assert sent[0] == sent[1]
    assert b"Running tool: count" in sent[0] if stream else b"counted f" in sent[0]
