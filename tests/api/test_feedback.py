"""Feedback through a real gateway: answers (plain, streamed, on every wire, from /chat
sessions) rated by their ids or positions, a second rating replacing the first, other users'
answers out of reach, bad ratings refused, the admin's listing, the counts in /v1/vitals, a
user's ratings forgotten with them (DELETE /v1/memories), and Redis going away."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from app.state.feedback import Answer, FeedbackStore
from app.state.redis import connect
from tests.conftest import MakeGateway, answer_recorded, start_redis
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
MODEL = "openai/gpt-test"


def ask(url: str, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    """A plain chat completion's body."""
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": MODEL, "messages": USER, **body},
        headers=headers,
        timeout=20,
    )
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def rate(url: str, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=20)


def listed(url: str, headers: dict[str, str] | None = None, **query: Any) -> dict[str, Any]:
    resp = httpx.get(f"{url}/v1/feedback", params=query, headers=headers, timeout=20)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def feedback_vitals(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = httpx.get(f"{url}/v1/vitals", headers=headers, timeout=20)
    data: dict[str, Any] = resp.json()["feedback"]
    return data


def test_plain_and_streamed_answers_are_rated_by_their_ids(
    make_gateway: MakeGateway, redis_url: str
) -> None:
    url = make_gateway()
    plain = answer_recorded(redis_url, ask(url, user="alice")["id"])
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    chunks = list(
        sdk.chat.completions.create(model=MODEL, messages=USER, stream=True, user="alice")
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == GREETING
    streamed = answer_recorded(redis_url, chunks[0].id)
    assert streamed != plain

    resp = rate(url, message_id=plain, rating=1, user_id="alice")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == {
        "id": body["id"],
        "object": "feedback",
        "owner": "alice",
        "message_id": plain,
        "session_id": None,
        "index": None,
        "model": MODEL,
        "pipeline": None,
        "tools": [],
        "rating": 1,
        "comment": None,
        "created_at": body["created_at"],
        "replaced": False,
    }
    assert body["id"].startswith("fb_")
    assert abs(body["created_at"] - time.time()) < 60
    also = rate(url, message_id=streamed, rating=-1, comment="too short", user_id="alice")
    assert also.status_code == 200, also.text
    assert (also.json()["comment"], also.json()["rating"]) == ("too short", -1)
    assert also.json()["id"] != body["id"]
    assert feedback_vitals(url) == {
        "models": {MODEL: {"up": 1, "down": 1, "count": 2, "positive_share": 0.5}},
        "pipelines": {},
    }


def test_a_second_rating_replaces_the_first(make_gateway: MakeGateway, redis_url: str) -> None:
    url = make_gateway()
    answer = answer_recorded(redis_url, ask(url, user="alice")["id"])
    first = rate(url, message_id=answer, rating=1, user_id="alice").json()
    again = rate(url, message_id=answer, rating=1, user_id="alice").json()
    assert again["replaced"]
    assert again["id"] == first["id"]
    assert feedback_vitals(url)["models"][MODEL] == {
        "up": 1,
        "down": 0,
        "count": 1,
        "positive_share": 1.0,
    }
    changed = rate(url, message_id=answer, rating=-1, comment="wrong", user_id="alice").json()
    assert changed["replaced"]
    assert changed["id"] == first["id"]
    assert feedback_vitals(url)["models"][MODEL] == {
        "up": 0,
        "down": 1,
        "count": 1,
        "positive_share": 0.0,
    }
    data = listed(url)["data"]
    assert [(item["id"], item["rating"], item["comment"]) for item in data] == [
        (first["id"], -1, "wrong")
    ]


def test_answers_of_every_wire_are_rated_by_the_id_it_gave(
    make_gateway: MakeGateway, redis_url: str
) -> None:
    url = make_gateway()
    message = httpx.post(
        f"{url}/v1/messages",
        json={"model": MODEL, "max_tokens": 50, "messages": USER, "metadata": {"user_id": "a"}},
        timeout=20,
    ).json()
    response = httpx.post(
        f"{url}/v1/responses", json={"model": MODEL, "input": "hi", "user": "a"}, timeout=20
    ).json()
    completion = httpx.post(
        f"{url}/v1/completions", json={"model": MODEL, "prompt": "hi", "user": "a"}, timeout=20
    ).json()
    ids = [message["id"], response["id"], completion["id"]]
    assert [i.split("_")[0].split("-")[0] for i in ids] == ["msg", "resp", "cmpl"]
    for answer_id in ids:
        resp = rate(url, message_id=answer_recorded(redis_url, answer_id), rating=1, user_id="a")
        assert resp.status_code == 200, resp.text
        assert resp.json()["model"] == MODEL
    assert feedback_vitals(url)["models"][MODEL]["up"] == 3


def test_the_gateways_tools_that_produced_the_answer_are_kept(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, redis_url: str
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    upstream.script = [[("calculator", json.dumps({"expression": "2+2"}))]]
    answer = answer_recorded(redis_url, ask(url, model="openai/scripted", user="alice")["id"])
    body = rate(url, message_id=answer, rating=1, user_id="alice").json()
    assert (body["model"], body["tools"]) == ("openai/scripted", ["calculator"])


def test_a_session_answer_is_rated_by_its_position(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    first = httpx.post(f"{url}/chat", json={"user_id": "alice", "message": "hi"}, timeout=30)
    session_id = first.json()["session_id"]
    upstream.script = [[("calculator", json.dumps({"expression": "6*7"}))]]
    second = httpx.post(
        f"{url}/chat",
        json={
            "user_id": "alice",
            "session_id": session_id,
            "message": "six times seven",
            "model": "openai/scripted",
        },
        timeout=30,
    )
    assert second.status_code == 200, second.text

    one = rate(url, session_id=session_id, index=1, rating=1, user_id="alice")
    assert one.status_code == 200, one.text
    assert (one.json()["model"], one.json()["tools"], one.json()["index"]) == (MODEL, [], 1)
    three = rate(url, session_id=session_id, index=3, rating=-1, user_id="alice").json()
    assert (three["model"], three["tools"]) == ("openai/scripted", ["calculator"])
    again = rate(url, session_id=session_id, index=3, rating=1, user_id="alice").json()
    assert again["replaced"]
    assert again["id"] == three["id"]

    user_message = rate(url, session_id=session_id, index=2, rating=1, user_id="alice")
    assert user_message.status_code == 400
    assert user_message.json()["error"]["param"] == "index"
    beyond = rate(url, session_id=session_id, index=4, rating=1, user_id="alice")
    assert beyond.status_code == 404
    assert beyond.json()["error"]["param"] == "index"
    bobs = rate(url, session_id=session_id, index=1, rating=-1, user_id="bob")
    assert bobs.status_code == 404
    assert bobs.json()["error"]["param"] == "session_id"
    unknown = rate(url, session_id="no-such-session", index=1, rating=1, user_id="alice")
    assert unknown.status_code == 404
    assert feedback_vitals(url)["models"] == {
        MODEL: {"up": 1, "down": 0, "count": 1, "positive_share": 1.0},
        "openai/scripted": {"up": 1, "down": 0, "count": 1, "positive_share": 1.0},
    }


def test_another_users_answer_or_an_unknown_one_is_a_404(
    make_gateway: MakeGateway, redis_url: str
) -> None:
    url = make_gateway(api_keys=["service-key"], trust_user_headers=True)
    key = {"Authorization": "Bearer service-key"}
    alice = {**key, "X-OpenWebUI-User-Id": "alice"}
    answer = answer_recorded(redis_url, ask(url, headers=alice)["id"])
    for who in ({**key, "X-OpenWebUI-User-Id": "bob"}, key):
        resp = rate(url, headers=who, message_id=answer, rating=-1)
        assert resp.status_code == 404
        assert resp.json()["error"] == {
            "message": f"no answer '{answer}'",
            "type": "invalid_request_error",
            "param": "message_id",
            "code": "not_found",
        }
    named = rate(url, headers=key, message_id=answer, rating=1, user_id="bob")
    assert named.status_code == 404
    assert rate(url, headers=alice, message_id="chatcmpl-0123", rating=1).status_code == 404
    resp = rate(url, headers=alice, message_id=answer, rating=1)
    assert resp.status_code == 200, resp.text
    assert resp.json()["owner"] == "alice"
    # the body's user counts as the header does
    bobs = answer_recorded(redis_url, ask(url, headers=key, user="bob")["id"])
    assert rate(url, headers=key, message_id=bobs, rating=1, user_id="bob").status_code == 200


BAD: list[tuple[dict[str, Any], str]] = [
    ({"rating": 0}, "rating"),
    ({"rating": 2}, "rating"),
    ({"rating": True}, "rating"),
    ({"rating": "1"}, "rating"),
    ({"rating": 1.0}, "rating"),
    ({"rating": "up"}, "rating"),
    ({}, "rating"),
    ({"rating": 1, "comment": "x" * 4001}, "comment"),
    ({"rating": 1, "message_id": None, "index": 1}, "message_id"),
    ({"rating": 1, "message_id": None, "session_id": "s1"}, "index"),
    ({"rating": 1, "session_id": "s1", "index": 1}, "message_id"),
    ({"rating": 1, "message_id": None, "session_id": "s1", "index": -1}, "index"),
    ({"rating": 1, "message_id": None, "session_id": "s1", "index": "1"}, "index"),
    ({"rating": 1, "stars": 5}, "stars"),
]
"""Bodies (beside `message_id: chatcmpl-1`, which None leaves out) and the field each names."""


def test_bad_feedback_is_a_400_naming_the_field(gateway: str) -> None:
    for bad, param in BAD:
        body = {k: v for k, v in {"message_id": "chatcmpl-1", **bad}.items() if v is not None}
        resp = httpx.post(f"{gateway}/v1/feedback", json=body, timeout=10)
        assert resp.status_code == 400, (bad, resp.text)
        error = resp.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param), bad
        if param == "rating":
            assert "rating" in error["message"]
    not_json = httpx.post(f"{gateway}/v1/feedback", content=b"{", timeout=10)
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"


def test_the_admins_listing_filters_and_pages(make_gateway: MakeGateway, redis_url: str) -> None:
    url = make_gateway(api_keys=["user-key"], admin_api_keys=["admin-key"])
    user = {"Authorization": "Bearer user-key"}
    admin = {"Authorization": "Bearer admin-key"}
    given = []
    for n, (model, value) in enumerate(
        [(MODEL, 1), ("openai/chat-only", -1), (MODEL, -1), ("openai/chat-only", 1)]
    ):
        answer = answer_recorded(redis_url, ask(url, headers=user, model=model, user="alice")["id"])
        resp = rate(url, headers=user, message_id=answer, rating=value, user_id="alice")
        assert resp.status_code == 200, resp.text
        given.append(resp.json()["id"])
        time.sleep(0.01 * (n < 3))  # distinct times: newest first is well defined
    _, _, pipeline_answer = asyncio.run(_pipeline_answer(redis_url, "alice"))
    resp = rate(url, headers=user, message_id=pipeline_answer, rating=1, user_id="alice")
    given.append(resp.json()["id"])

    refused = httpx.get(f"{url}/v1/feedback", headers=user, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    everything = listed(url, admin)
    assert [item["id"] for item in everything["data"]] == given[::-1]
    assert not everything["has_more"]
    assert everything["data"][0]["owner"] == "alice"
    assert [i["id"] for i in listed(url, admin, model=MODEL)["data"]] == [given[2], given[0]]
    assert [i["id"] for i in listed(url, admin, rating=-1)["data"]] == [given[2], given[1]]
    assert [i["id"] for i in listed(url, admin, model=MODEL, rating=1)["data"]] == [given[0]]
    assert [i["id"] for i in listed(url, admin, pipeline="agents")["data"]] == [given[4]]
    assert listed(url, admin, pipeline="agents")["data"][0]["model"] == "pipeline/agents"

    page = listed(url, admin, limit=2)
    assert ([i["id"] for i in page["data"]], page["has_more"]) == ([given[4], given[3]], True)
    assert page["last_id"] == given[3]
    rest = listed(url, admin, limit=2, after=page["last_id"])
    assert [i["id"] for i in rest["data"]] == [given[2], given[1]]
    last = listed(url, admin, limit=2, after=rest["last_id"])
    assert ([i["id"] for i in last["data"]], last["has_more"]) == ([given[0]], False)
    for query, param in (({"rating": 2}, "rating"), ({"after": "fb_x"}, "after"),
                         ({"limit": 0}, "limit"), ({"rating": "up"}, "rating")):  # fmt: skip
        bad = httpx.get(f"{url}/v1/feedback", params=query, headers=admin, timeout=10)
        assert bad.status_code == 400, (query, bad.text)
        assert bad.json()["error"]["param"] == param
    # the routes under / too
    assert httpx.get(f"{url}/feedback", headers=admin, timeout=10).status_code == 200


async def _pipeline_answer(
    redis_url: str, owner: str, answer_id: str = "chatcmpl-feedc0ffee"
) -> tuple[str, str, str]:
    """An answer of the `agents` pipeline (its turns answer as model `pipeline/agents`), as the
    gateway records it; its id."""
    client = connect(redis_url, 2.0)
    try:
        answer = Answer.of("pipeline/agents", ["web_search"], owner)
        await FeedbackStore(client, ttl=60).remember([(answer_id, answer)])
        return answer.model, answer.pipeline or "", answer_id
    finally:
        await client.aclose()


def test_vitals_count_per_model_and_pipeline(make_gateway: MakeGateway, redis_url: str) -> None:
    url = make_gateway()
    assert feedback_vitals(url) == {"models": {}, "pipelines": {}}
    for owner, value in (("alice", 1), ("bob", 1), ("carol", -1)):
        _, _, answer = asyncio.run(_pipeline_answer(redis_url, owner))
        assert rate(url, message_id=answer, rating=value, user_id=owner).status_code == 200
    plain = answer_recorded(redis_url, ask(url, user="alice")["id"])
    assert rate(url, message_id=plain, rating=-1, user_id="alice").status_code == 200
    agents = {"up": 2, "down": 1, "count": 3, "positive_share": 0.667}
    assert feedback_vitals(url) == {
        "models": {
            MODEL: {"up": 0, "down": 1, "count": 1, "positive_share": 0.0},
            "pipeline/agents": agents,
        },
        "pipelines": {"agents": agents},
    }


def withdrawn(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, str, str], float]:
    """gateway_feedback_withdrawn_total by model, pipeline and rating."""
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=20).text
    return {
        (s.labels["model"], s.labels["pipeline"], s.labels["rating"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gateway_feedback_withdrawn_total"
    }


def forget(url: str, user: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.delete(f"{url}/v1/memories", params={"user_id": user}, headers=headers, timeout=60)


def test_forgetting_a_user_forgets_their_ratings(make_gateway: MakeGateway, redis_url: str) -> None:
    url = make_gateway(api_keys=["user-key"], admin_api_keys=["admin-key"])
    user = {"Authorization": "Bearer user-key"}
    admin = {"Authorization": "Bearer admin-key"}
    mine: dict[str, list[str]] = {"alice": [], "bob": []}
    answers: dict[str, list[str]] = {"alice": [], "bob": []}
    for owner, values in (("alice", (1, -1)), ("bob", (1,))):
        for value in values:
            answer = answer_recorded(redis_url, ask(url, headers=user, user=owner)["id"])
            resp = rate(url, user, message_id=answer, rating=value, user_id=owner, comment="mine")
            assert resp.status_code == 200, resp.text
            mine[owner].append(resp.json()["id"])
            answers[owner].append(answer)
    for owner, value, answer_id in (("alice", 1, "chatcmpl-a1"), ("bob", -1, "chatcmpl-b1")):
        _, _, answer = asyncio.run(_pipeline_answer(redis_url, owner, answer_id))
        resp = rate(url, user, message_id=answer, rating=value, user_id=owner)
        mine[owner].append(resp.json()["id"])
    before = feedback_vitals(url, admin)
    assert before["models"][MODEL] == {"up": 2, "down": 1, "count": 3, "positive_share": 0.667}
    assert before["pipelines"]["agents"] == {"up": 1, "down": 1, "count": 2, "positive_share": 0.5}
    assert withdrawn(url, admin) == {}

    resp = forget(url, "alice", user)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "object": "forget",
        "deleted": True,
        "memories": 0,
        "documents": 0,
        "sessions": 0,
        "feedback": 3,
    }
    assert {item["id"] for item in listed(url, admin)["data"]} == set(mine["bob"])
    assert listed(url, admin, model=MODEL)["data"][0]["owner"] == "bob"
    # the totals drop by exactly alice's ratings: bob's stand
    assert feedback_vitals(url, admin) == {
        "models": {
            MODEL: {"up": 1, "down": 0, "count": 1, "positive_share": 1.0},
            "pipeline/agents": {"up": 0, "down": 1, "count": 1, "positive_share": 0.0},
        },
        "pipelines": {"agents": {"up": 0, "down": 1, "count": 1, "positive_share": 0.0}},
    }
    assert withdrawn(url, admin) == {
        (MODEL, "", "up"): 1,
        (MODEL, "", "down"): 1,
        ("pipeline/agents", "agents", "up"): 1,
    }
    # her answers' records went too: they can no longer be rated; bob's still can
    gone = rate(url, user, message_id=answers["alice"][0], rating=1, user_id="alice")
    assert gone.status_code == 404
    again = rate(url, user, message_id=answers["bob"][0], rating=-1, user_id="bob")
    assert again.status_code == 200, again.text
    assert forget(url, "alice", user).json()["feedback"] == 0


def test_ratings_given_while_a_user_is_forgotten_leave_the_totals_right(
    make_gateway: MakeGateway, redis_url: str
) -> None:
    url = make_gateway()
    ids = [asyncio.run(_pipeline_answer(redis_url, "alice", f"chatcmpl-{n}"))[2] for n in range(40)]
    started = threading.Event()

    def rate_all(value: int) -> list[int]:
        statuses = []
        for n, answer in enumerate(ids):
            statuses.append(rate(url, message_id=answer, rating=value, user_id="alice").status_code)
            if n == 5:
                started.set()
        return statuses

    with ThreadPoolExecutor(2) as pool:
        raters = [pool.submit(rate_all, 1), pool.submit(rate_all, -1)]
        assert started.wait(30)
        during = forget(url, "alice")
        statuses = [status for rater in raters for status in rater.result()]
    # a rating after the forget of an answer it deleted is a 404; one that landed just after
    # the script is still stored, and the check says so
    assert set(statuses) <= {200, 404}
    assert 404 in statuses
    if during.status_code == 503:
        assert "redis_feedback" in during.json()["error"]["message"]
    else:
        assert during.status_code == 200, during.text
    standing = listed(url, limit=1000)["data"]
    up = sum(item["rating"] == 1 for item in standing)
    down = len(standing) - up
    expected = {"up": up, "down": down, "count": up + down} if standing else None
    agents = feedback_vitals(url)["pipelines"].get("agents")
    assert (agents and {k: agents[k] for k in ("up", "down", "count")}) == expected
    assert forget(url, "alice").json()["feedback"] == len(standing)
    assert feedback_vitals(url) == {"models": {}, "pipelines": {}}
    total = sum(withdrawn(url).values())
    rated = httpx.get(f"{url}/metrics", timeout=20).text
    given = sum(
        s.value
        for family in text_string_to_metric_families(rated)
        for s in family.samples
        if s.name == "gateway_feedback_total"
    )
    assert given - total == 0  # none stand


def test_redis_down_forgets_nothing(make_gateway: MakeGateway, tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    own = f"unix://{tmp_path}/redis.sock"
    url = make_gateway(redis_url=own)
    added = httpx.post(
        f"{url}/v1/memories", json={"text": "Prefers short answers", "user_id": "alice"}, timeout=60
    )
    assert added.status_code == 201, added.text
    answer = answer_recorded(own, ask(url, user="alice")["id"])
    assert rate(url, message_id=answer, rating=1, user_id="alice").status_code == 200
    server.terminate()
    server.wait(10)
    resp = forget(url, "alice")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "state_unavailable"
    assert "Redis" in resp.json()["error"]["message"]
    memories = httpx.get(f"{url}/v1/memories", params={"user_id": "alice"}, timeout=20)
    assert [m["text"] for m in memories.json()["data"]] == ["Prefers short answers"]
    server = start_redis(tmp_path)  # the same data, from its append-only file
    try:
        assert [item["owner"] for item in listed(url)["data"]] == ["alice"]
        assert feedback_vitals(url)["models"][MODEL]["up"] == 1
        done = forget(url, "alice")
        assert done.status_code == 200, done.text
        assert (done.json()["memories"], done.json()["feedback"]) == (1, 1)
        assert feedback_vitals(url) == {"models": {}, "pipelines": {}}
    finally:
        server.terminate()
        server.wait(10)


def test_redis_down_is_a_503_and_answers_go_on(make_gateway: MakeGateway, tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    own = f"unix://{tmp_path}/redis.sock"
    url = make_gateway(redis_url=own)
    answer = answer_recorded(own, ask(url, user="alice")["id"])
    server.terminate()
    server.wait(10)
    resp = rate(url, message_id=answer, rating=1, user_id="alice")
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "state_unavailable")
    assert "Redis" in error["message"]
    session = rate(url, session_id="s1", index=1, rating=1, user_id="alice")
    assert session.status_code == 503
    assert session.json()["error"]["code"] == "state_unavailable"
    admin = httpx.get(f"{url}/v1/feedback", timeout=10)
    assert admin.status_code == 503
    assert admin.json()["error"]["code"] == "state_unavailable"
    # the answers themselves do not need Redis: plain and streamed, they are given
    assert ask(url, user="alice")["choices"][0]["message"]["content"] == GREETING
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    stream = sdk.chat.completions.create(model=MODEL, messages=USER, stream=True, user="alice")
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == GREETING
    assert httpx.get(f"{url}/v1/vitals", timeout=10).json()["feedback"] is None


def test_openapi_documents_the_bodies_and_openai_errors(gateway: str) -> None:
    schema = httpx.get(f"{gateway}/openapi.json", timeout=10).json()
    post = schema["paths"]["/v1/feedback"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["rating"]
    assert body["properties"]["rating"]["enum"] == [1, -1]
    assert {"message_id", "session_id", "index", "comment", "user_id"} <= set(body["properties"])
    assert "counted from 0" in body["properties"]["index"]["description"]
    assert {"400", "404", "503"} <= set(post["responses"])
    get = schema["paths"]["/v1/feedback"]["get"]
    assert {"400", "403"} <= set(get["responses"])
    for operation in (post, get):
        assert "422" not in operation["responses"]
        assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
