"""The stateful chat API through a real gateway: /chat, /v1/chat/stream, the sessions API,
metrics and vitals, identity, and what happens when Redis goes away or the gateway restarts."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.chat.context import SUMMARY_HEADING
from app.chat.grounding import MEMORY_HEADING
from app.chat.stateful import (
    FOLLOW_UP_MAX_TOKENS,
    FOLLOW_UP_PROMPT,
    GENERIC_FOLLOW_UPS,
    parse_follow_ups,
    sources,
)
from app.chat.summary import FOLD_PROMPT
from app.main import create_app
from app.tools.context import Register, ToolContext
from app.tools.registry import ToolOutcome
from tests.conftest import MakeGateway, gateway_settings, start_redis
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState
from tests.fakes.serve import serve

Events = list[tuple[str, Any]]


def chat(url: str, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/chat", json=body, headers=headers, timeout=30)


def events(
    url: str, body: dict[str, Any], path: str = "/v1/chat/stream", **kwargs: Any
) -> tuple[httpx.Response, Events]:
    """The response and its (event, data) pairs."""
    found: Events = []
    with httpx.stream("POST", f"{url}{path}", json=body, timeout=30, **kwargs) as resp:
        if resp.status_code != 200:
            resp.read()
            return resp, found
        assert resp.headers["content-type"].startswith("text/event-stream")
        name = "message"
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                found.append((name, json.loads(line[6:])))
    return resp, found


def request_for(upstream: OpenAIUpstreamState, text: str) -> dict[str, Any]:
    """The last chat request the upstream got whose last message is the user's `text`."""
    for body in reversed(upstream.requests):
        if body["messages"][-1] == {"role": "user", "content": text}:
            return body
    raise AssertionError(f"no request ended with {text!r}")


def get(url: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{url}{path}", timeout=10, **kwargs)


def wait_for(check: Any, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


# --- the seed's scenario ----------------------------------------------------------------------


def test_chat_keeps_the_history(gateway: str, upstream: OpenAIUpstreamState) -> None:
    first = chat(gateway, user_id="u1", message="My name is Alice")
    assert first.status_code == 200
    answer = first.json()
    assert answer["answer"] == GREETING
    assert answer["user_id"] == "u1"
    assert answer["model"] == "openai/gpt-test"  # the default routing: no model was named
    assert (answer["tools_used"], answer["sources"]) == ([], [])
    assert 0 <= answer["timings"]["ttft_ms"] <= answer["timings"]["total_ms"]
    assert answer["usage"]["total_tokens"] > 0
    session_id = answer["session_id"]

    second = chat(gateway, user_id="u1", session_id=session_id, message="What is my name?")
    assert second.status_code == 200
    assert second.json()["session_id"] == session_id
    sent = request_for(upstream, "What is my name?")["messages"]
    assert sent[0]["role"] == "system"  # the persona
    assert sent[1:] == [
        {"role": "user", "content": "My name is Alice"},
        {"role": "assistant", "content": GREETING},
        {"role": "system", "content": f"{MEMORY_HEADING}\n- The user's name is Alice."},
        {"role": "user", "content": "What is my name?"},
    ]


def test_alice_is_remembered_after_her_turn_is_folded(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(short_term_k=1, token_budget=256)
    first = chat(url, user_id="u1", message="echo: My name is Alice").json()
    session_id = first["session_id"]
    assert first["answer"] == "My name is Alice"
    chat(url, user_id="u1", session_id=session_id, message="echo: I like green tea")
    # Turn 1 no longer fits SHORT_TERM_K=1: the model folds it into the summary.
    session = wait_for(
        lambda: (s := get(url, f"/v1/sessions/{session_id}").json())["summary"] and s
    )
    assert "Alice" in session["summary"]
    folds = [
        r for r in upstream.requests if r["messages"][0]["content"].startswith(FOLD_PROMPT[:30])
    ]
    assert (
        "User: echo: My name is Alice\nAssistant: My name is Alice"
        in (folds[0]["messages"][1]["content"])
    )

    chat(url, user_id="u1", session_id=session_id, message="What is my name?")
    sent = request_for(upstream, "What is my name?")["messages"]
    system = sent[0]["content"]
    assert f"{SUMMARY_HEADING}\n{session['summary']}" in system
    assert "Alice" in system
    assert {"role": "user", "content": "echo: My name is Alice"} not in sent
    assert sent[1:] == [
        {"role": "user", "content": "echo: I like green tea"},
        {"role": "assistant", "content": "I like green tea"},
        {"role": "user", "content": "What is my name?"},
    ]


# --- streaming --------------------------------------------------------------------------------


def test_stream_events_in_order(gateway: str, upstream: OpenAIUpstreamState) -> None:
    resp, found = events(gateway, {"userId": "u1", "prompt": "hi"})
    assert resp.status_code == 200
    names = [name for name, _ in found]
    assert names[0] == "agent"
    assert names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    agent, done = found[0][1], found[-1][1]
    assert agent["model"] == "openai/gpt-test"
    assert agent["userId"] == "u1"
    assert agent["name"] == "Gateway Assistant"
    tokens = "".join(data["text"] for name, data in found if name == "token")
    assert tokens == done["fullText"] == GREETING
    assert done["sessionId"] == agent["sessionId"]
    assert done["suggestions"] == list(GENERIC_FOLLOW_UPS)  # the fake's reply holds none
    assert set(done["timings"]) == {"ttft_ms", "total_ms"}
    assert 0 < done["timings"]["ttft_ms"] <= done["timings"]["total_ms"]

    resp, again = events(
        gateway, {"userId": "u1", "sessionId": done["sessionId"], "prompt": "more"}
    )
    assert again[-1][0] == "done"
    session = get(gateway, f"/v1/sessions/{done['sessionId']}").json()
    assert session["message_count"] == 4


def test_chat_with_stream_true_sends_the_same_events(gateway: str) -> None:
    resp, found = events(gateway, {"user_id": "u1", "message": "hi", "stream": True}, path="/chat")
    assert resp.status_code == 200
    assert [n for n, _ in found][:1] + [n for n, _ in found][-1:] == ["agent", "done"]
    assert found[-1][1]["fullText"] == GREETING


def test_follow_ups_come_from_the_model(gateway: str, upstream: OpenAIUpstreamState) -> None:
    prompt = "echo: Is A true? Is B true? Is C true?"
    _, found = events(gateway, {"userId": "u1", "prompt": prompt, "model": "openai/gpt-test"})
    assert found[-1][1]["suggestions"] == ["Is A true?", "Is B true?", "Is C true?"]
    ask = next(r for r in upstream.requests if r["messages"][0]["content"] == FOLLOW_UP_PROMPT)
    assert ask["max_tokens"] == FOLLOW_UP_MAX_TOKENS
    assert ask["messages"][1]["content"].startswith(f"User: {prompt}\nAssistant: ")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1. Why is the sky blue?\n2. What is Rayleigh scattering?\n3. Is it blue on Mars?",
         ["Why is the sky blue?", "What is Rayleigh scattering?", "Is it blue on Mars?"]),
        ('- "How old is it?"\n* Who built it?\nQ3: Where is it?',
         ["How old is it?", "Who built it?", "Where is it?"]),
        ("Why is that? What about tea? What about tea?",
         ["Why is that?", "What about tea?", GENERIC_FOLLOW_UPS[0]]),
        ("", list(GENERIC_FOLLOW_UPS)),
    ],
)  # fmt: skip
def test_follow_ups_are_parsed_and_topped_up(reply: str, expected: list[str]) -> None:
    assert parse_follow_ups(reply) == expected


def test_sources_from_tool_results() -> None:
    search = json.dumps(
        [
            {"title": "A", "url": "https://a.example/1", "snippet": "..."},
            {"title": "B", "url": "https://b.example/2"},
            {"title": "A again", "url": "https://a.example/1"},
        ]
    )
    weather = json.dumps({"source": "Open-Meteo", "now": {"temperature": 20}})
    cut = '{"url": "https://c.example/page", "text": "long …[cut at TOOL_RESULT_MAX_CHARS]'
    outcomes = [
        ToolOutcome("web_search", {}, True, search, 0.1),
        ToolOutcome("weather", {}, True, weather, 0.1),
        ToolOutcome("fetch_url", {}, True, cut, 0.1),
        ToolOutcome("fetch_url", {}, False, "Error: https://d.example is down", 0.1),
        ToolOutcome("calculator", {}, True, '{"result": "42"}', 0.1),
    ]
    assert sources(outcomes) == [
        {"tool": "web_search", "url": "https://a.example/1", "title": "A"},
        {"tool": "web_search", "url": "https://b.example/2", "title": "B"},
        {"tool": "weather", "source": "Open-Meteo"},
        {"tool": "fetch_url", "url": "https://c.example/page"},
    ]


async def cite(topic: str) -> dict[str, Any]:
    """Finds a source about a topic."""
    return {"results": [{"title": topic.title(), "url": f"https://example.org/{topic}"}]}


def cite_plugin(register: Register, context: ToolContext) -> None:
    register(cite)


def test_tool_calls_are_events_with_their_sources(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["cite"], tool_plugins=[cite_plugin])
    upstream.script = [[("cite", '{"topic": "tea"}')]]
    _, found = events(url, {"userId": "u1", "prompt": "tea?", "model": "openai/scripted"})
    names = [name for name, _ in found]
    assert names[:3] == ["agent", "tool_call_started", "tool_call_completed"]
    assert names[-1] == "done"
    assert set(names[3:-1]) == {"token"}
    assert found[1][1] == {"name": "cite", "index": 0}
    completed = found[2][1]
    assert (completed["name"], completed["index"], completed["ok"]) == ("cite", 0, True)
    assert completed["arguments"] == {"topic": "tea"}
    assert completed["duration_ms"] >= 0
    done = found[-1][1]
    assert done["fullText"].startswith("Final: ")
    assert "Running tool" not in done["fullText"]
    source = {"tool": "cite", "url": "https://example.org/tea", "title": "Tea"}
    assert done["sources"] == [source]

    answer = chat(url, user_id="u1", message="tea?", model="openai/scripted").json()
    assert [t["name"] for t in answer["tools_used"]] == ["cite"]
    assert answer["sources"] == [source]
    metrics = get(url, f"/v1/metrics/{answer['session_id']}").json()
    assert metrics["tool_calls"]["count"] == 1
    assert metrics["tool_calls"]["by_tool"]["cite"]["count"] == 1


# --- input, sessions, metrics -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat", {"user_id": "u1"}, "message"),
        ("/chat", {"user_id": "u1", "message": ""}, "message"),
        ("/chat", {"message": "hi"}, "user_id"),
        ("/chat", {"user_id": "u1", "message": "hi", "session_id": "../x"}, "session_id"),
        ("/chat", {"user_id": "u1", "message": "hi", "stream": "often"}, "stream"),
        ("/v1/chat/stream", {"userId": "u1"}, "prompt"),
        ("/v1/chat/stream", {"prompt": "hi"}, "userId"),
        ("/v1/chat/stream", {"userId": 5, "prompt": "hi"}, "userId"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    gateway: str, path: str, body: dict[str, Any], param: str
) -> None:
    resp = httpx.post(f"{gateway}{path}", json=body, timeout=10)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_bad_json_and_bad_limits_are_400s(gateway: str) -> None:
    resp = httpx.post(f"{gateway}/chat", content=b"{nope", timeout=10)
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]["message"]
    resp = get(gateway, "/v1/sessions", params={"user_id": "u1", "limit": 0})
    assert (resp.status_code, resp.json()["error"]["param"]) == (400, "limit")
    resp = get(gateway, "/v1/sessions")
    assert (resp.status_code, resp.json()["error"]["param"]) == (400, "user_id")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("suffix", ["", "/messages", "/metrics"])
def test_an_unknown_session_is_a_404(gateway: str, method: str, suffix: str) -> None:
    if method == "DELETE" and suffix:
        return
    path = "/v1/metrics/nope" if suffix == "/metrics" else f"/v1/sessions/nope{suffix}"
    resp = httpx.request(method, f"{gateway}{path}", timeout=10)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_the_sessions_api(gateway: str) -> None:
    a = chat(gateway, user_id="alice", message="first").json()["session_id"]
    b = chat(gateway, user_id="alice", message="second").json()["session_id"]
    chat(gateway, user_id="bob", message="other")
    chat(gateway, user_id="alice", session_id=a, message="again")
    listed = get(gateway, "/v1/sessions", params={"user_id": "alice"}).json()
    assert listed["object"] == "list"
    assert [s["id"] for s in listed["data"]] == [a, b]
    session = get(gateway, f"/v1/sessions/{a}").json()
    assert set(session) == {
        "id",
        "object",
        "user_id",
        "summary",
        "message_count",
        "created_at",
        "updated_at",
    }
    assert (session["id"], session["user_id"], session["message_count"]) == (a, "alice", 4)
    assert session["created_at"] <= session["updated_at"]
    messages = get(gateway, f"/v1/sessions/{a}/messages", params={"limit": 3}).json()["data"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("assistant", GREETING),
        ("user", "again"),
        ("assistant", GREETING),
    ]
    deleted = httpx.delete(f"{gateway}/v1/sessions/{a}", timeout=10)
    assert deleted.json() == {"id": a, "object": "session", "deleted": True}
    assert get(gateway, f"/v1/sessions/{a}").status_code == 404
    listed = get(gateway, "/v1/sessions", params={"user_id": "alice"}).json()
    assert [s["id"] for s in listed["data"]] == [b]


def test_a_client_chosen_session_id_starts_a_session(gateway: str) -> None:
    answer = chat(gateway, user_id="u1", session_id="chat-123", message="hi").json()
    assert answer["session_id"] == "chat-123"
    assert get(gateway, "/v1/sessions/chat-123").json()["user_id"] == "u1"


def test_at_most_max_session_messages_are_kept(make_gateway: MakeGateway) -> None:
    url = make_gateway(max_session_messages=4, short_term_k=1)
    session_id = chat(url, user_id="u1", message="echo: one").json()["session_id"]
    for word in ("two", "three", "four"):
        chat(url, user_id="u1", session_id=session_id, message=f"echo: {word}")

    def kept() -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = get(url, f"/v1/sessions/{session_id}/messages").json()["data"]
        return data

    # Older turns leave the list once the summary covers them, which the folds do shortly.
    wait_for(lambda: len(kept()) <= 4)
    assert [m["content"] for m in kept()][-2:] == ["echo: four", "four"]
    session = get(url, f"/v1/sessions/{session_id}").json()
    assert session["message_count"] == 8
    assert session["summary"]


def test_metrics_and_vitals(gateway: str) -> None:
    before = get(gateway, "/v1/vitals").json()
    assert before["uptime_s"] >= 0
    assert before["totals"] == {}
    session_id = chat(gateway, user_id="u1", message="hi").json()["session_id"]
    events(gateway, {"userId": "u1", "sessionId": session_id, "prompt": "again"})
    metrics = get(gateway, f"/v1/metrics/{session_id}").json()
    assert metrics["session_id"] == session_id
    assert metrics["turns"] == 2
    assert metrics["ttft_ms"]["max"] <= metrics["total_ms"]["max"]
    assert metrics["tool_calls"]["count"] == 0
    assert metrics["tokens"]["completion_tokens"] == 10
    assert metrics["last"]["model"] == "openai/gpt-test"
    vitals = get(gateway, "/v1/vitals").json()
    assert vitals["totals"]["turns"] == 2
    assert vitals["totals"]["sessions"] == 1
    assert vitals["totals"]["completion_tokens"] == 10
    assert vitals["averages"]["total_ms"] is not None


def test_the_model_field_picks_the_model(gateway: str, upstream: OpenAIUpstreamState) -> None:
    answer = chat(gateway, user_id="u1", message="hello", model="openai/no-tools").json()
    assert answer["answer"] == "You said: hello"
    resp = chat(gateway, user_id="u1", message="hello", model="openai/missing")
    assert (resp.status_code, resp.json()["error"]["code"]) == (404, "model_not_found")


# --- identity ---------------------------------------------------------------------------------


def keys_file(tmp_path: Path, **limits: Any) -> Path:
    path = tmp_path / "keys.json"
    entries = [
        {"hash": "sha256:" + hashlib.sha256(key.encode()).hexdigest(), "owner": owner, **limits}
        for key, owner in (("alice-key", "alice"), ("bob-key", "bob"), ("service-key", None))
    ]
    path.write_text(json.dumps(entries))
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_bound_to_an_owner_acts_only_as_that_owner(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    url = make_gateway(api_keys_file=keys_file(tmp_path))
    alice, bob = bearer("alice-key"), bearer("bob-key")
    mine = chat(url, alice, message="hi").json()
    assert mine["user_id"] == "alice"
    claimed = chat(url, alice, user_id="bob", message="hi").json()
    assert claimed["user_id"] == "alice"  # the key's owner, whatever the body says
    session_id = mine["session_id"]
    for path in (f"/v1/sessions/{session_id}", f"/v1/sessions/{session_id}/messages"):
        assert get(url, path, headers=bob).status_code == 404
        assert get(url, path, headers=alice).status_code == 200
    assert get(url, f"/v1/metrics/{session_id}", headers=bob).status_code == 404
    assert httpx.delete(f"{url}/v1/sessions/{session_id}", headers=bob).status_code == 404
    theirs = chat(url, bob, session_id=session_id, message="let me in")
    assert theirs.status_code == 404
    resp, _ = events(url, {"sessionId": session_id, "prompt": "x"}, headers=bob)
    assert resp.status_code == 404
    listed = get(url, "/v1/sessions", params={"user_id": "alice"}, headers=bob).json()
    assert listed["data"] == []
    assert get(url, f"/v1/sessions/{session_id}", headers=alice).json()["message_count"] == 2
    assert len(get(url, "/v1/sessions", headers=alice).json()["data"]) == 2


def test_a_service_key_acts_for_the_user_the_request_names(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    url = make_gateway(api_keys_file=keys_file(tmp_path))
    service = bearer("service-key")
    resp = chat(url, service, message="hi")
    assert (resp.status_code, resp.json()["error"]["param"]) == (400, "user_id")
    session_id = chat(url, service, user_id="carol", message="hi").json()["session_id"]
    query = {"user_id": "dave"}
    assert get(url, f"/v1/sessions/{session_id}", params=query, headers=service).status_code == 404
    query = {"user_id": "carol"}
    assert get(url, f"/v1/sessions/{session_id}", params=query, headers=service).status_code == 200
    listed = get(url, "/v1/sessions", params=query, headers=service).json()["data"]
    assert [s["id"] for s in listed] == [session_id]
    # OpenWebUI's user header is not trusted unless TRUST_USER_HEADERS=true
    header = {**service, "X-OpenWebUI-User-Id": "carol"}
    assert chat(url, header, message="hi").status_code == 400


def test_stateful_turns_count_against_the_token_limit(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    url = make_gateway(api_keys_file=keys_file(tmp_path, tpm=50))
    alice, bob = bearer("alice-key"), bearer("bob-key")
    first = chat(url, alice, message="hi")
    assert first.json()["usage"]["total_tokens"] > 50
    assert chat(url, alice, message="hi").status_code == 429
    _, found = events(url, {"prompt": "hi"}, headers=bob)
    assert found[-1][1]["usage"]["total_tokens"] > 50
    assert chat(url, bob, message="hi").status_code == 429


def test_openwebui_user_header_when_trusted(make_gateway: MakeGateway) -> None:
    url = make_gateway(trust_user_headers=True)
    carol, dave = {"X-OpenWebUI-User-Id": "carol"}, {"X-OpenWebUI-User-Id": "dave"}
    answer = chat(url, carol, message="hi").json()
    assert answer["user_id"] == "carol"
    assert chat(url, carol, user_id="erin", message="hi").json()["user_id"] == "erin"
    session_id = answer["session_id"]
    assert get(url, f"/v1/sessions/{session_id}", headers=dave).status_code == 404
    assert get(url, f"/v1/sessions/{session_id}", headers=carol).status_code == 200
    assert [s["id"] for s in get(url, "/v1/sessions", headers=carol).json()["data"]] == [session_id]


# --- Redis going away, gateways restarting ----------------------------------------------------


def test_redis_down_is_a_503_before_the_model_is_asked(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path)
    url = make_gateway(redis_url=f"unix://{tmp_path}/redis.sock")
    redis.terminate()
    redis.wait(10)
    asked = len(upstream.requests)
    resp = chat(url, user_id="u1", message="hi")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "state_unavailable"
    resp, _ = events(url, {"userId": "u1", "prompt": "hi"})
    assert resp.status_code == 503
    assert len(upstream.requests) == asked
    vitals = get(url, "/v1/vitals").json()
    assert vitals["totals"] is None
    assert vitals["uptime_s"] >= 0


def _kill_mid_flight(upstream: OpenAIUpstreamState, text: str, redis: Any) -> None:
    wait_for(lambda: any(r["messages"][-1].get("content") == text for r in upstream.requests))
    redis.terminate()
    redis.wait(10)


def test_redis_killed_mid_flight_fails_the_turn_and_keeps_nothing_of_it(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path)
    url = make_gateway(redis_url=f"unix://{tmp_path}/redis.sock")
    session_id = chat(url, user_id="u1", message="kept").json()["session_id"]
    upstream.slow_first_delay = 1.0
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            chat,
            url,
            user_id="u1",
            session_id=session_id,
            message="lost",
            model="openai/slow-first",
        )
        _kill_mid_flight(upstream, "lost", redis)
        resp = pending.result()
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "state_unavailable"

    redis = start_redis(tmp_path)  # the same append-only file: what was written is back
    try:
        messages = get(url, f"/v1/sessions/{session_id}/messages").json()["data"]
        assert [m["content"] for m in messages] == ["kept", GREETING]
        assert get(url, f"/v1/metrics/{session_id}").json()["turns"] == 1
        again = chat(url, user_id="u1", session_id=session_id, message="back")
        assert again.status_code == 200
        assert get(url, f"/v1/sessions/{session_id}").json()["message_count"] == 4
    finally:
        redis.terminate()
        redis.wait(10)


def test_redis_killed_mid_stream_ends_with_an_error_event(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path)
    url = make_gateway(redis_url=f"unix://{tmp_path}/redis.sock")
    upstream.slow_first_delay = 1.0
    body = {"userId": "u1", "prompt": "lost", "model": "openai/slow-first"}
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(events, url, body)
        _kill_mid_flight(upstream, "lost", redis)
        resp, found = pending.result()
    assert resp.status_code == 200
    names = [name for name, _ in found]
    assert names[0] == "agent"
    assert names[-1] == "error"
    assert "done" not in names
    assert found[-1][1]["code"] == "state_unavailable"


def _gateway(openai_url: str, **overrides: Any) -> Any:
    settings = gateway_settings(
        openai_base_url=f"{openai_url}/v1", openai_api_key="upstream-key", **overrides
    )
    return serve(create_app(settings))


@pytest.mark.parametrize("embedded", [False, True], ids=["redis-url", "embedded-redis"])
def test_sessions_survive_a_gateway_restart(
    openai_server: tuple[str, OpenAIUpstreamState],
    upstream: OpenAIUpstreamState,
    tmp_path: Path,
    embedded: bool,
) -> None:
    openai_url, _ = openai_server
    overrides: dict[str, Any] = {"redis_url": "", "data_dir": tmp_path} if embedded else {}
    written: dict[str, list[str]] = {}
    with _gateway(openai_url, **overrides) as url:
        for user in ("alice", "bob"):
            for n in range(2):
                session_id = chat(url, user_id=user, message=f"{user} {n}").json()["session_id"]
                chat(url, user_id=user, session_id=session_id, message=f"{user} {n} again")
                written.setdefault(user, []).append(session_id)
    with _gateway(openai_url, **overrides) as url:
        for user, ids in written.items():
            listed = get(url, "/v1/sessions", params={"user_id": user}).json()["data"]
            assert sorted(s["id"] for s in listed) == sorted(ids)
            for session_id in ids:
                messages = get(url, f"/v1/sessions/{session_id}/messages").json()["data"]
                assert len(messages) == 4
                assert messages[0]["content"].startswith(user)
        answer = chat(url, user_id="alice", session_id=written["alice"][0], message="still here?")
        assert answer.status_code == 200
        sent = request_for(upstream, "still here?")["messages"]
        assert {"role": "user", "content": "alice 0 again"} in sent
