"""POST /v1/responses and the stored responses, over HTTP against a real gateway: shapes, the
event stream, errors, storage and chaining, owners, Redis going away, failures mid-stream,
billing, the cache and the gateway's own tools."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import MakeGateway, start_redis
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def create(url: str, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    body.setdefault("model", "openai/gpt-test")
    return httpx.post(f"{url}/v1/responses", json=body, headers=headers, timeout=30)


def streamed(
    url: str, headers: dict[str, str] | None = None, **body: Any
) -> tuple[httpx.Response, list[bytes], list[dict[str, Any]]]:
    """The response, its SSE comments, and its events in order (each `event:` name checked
    against its data's `type`)."""
    body.setdefault("model", "openai/gpt-test")
    with httpx.stream(
        "POST", f"{url}/v1/responses", json={**body, "stream": True}, headers=headers, timeout=30
    ) as resp:
        raw = resp.read()
    comments, events = [], []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        if block.startswith(b":"):
            comments.append(block)
            continue
        name, data = block.decode().split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == "event: " + event["type"]
        events.append(event)
    return resp, comments, events


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- shapes -----------------------------------------------------------------------------------


def test_a_plain_response(gateway: str, upstream: OpenAIUpstreamState) -> None:
    resp = create(
        gateway,
        input="hi",
        instructions="Be brief.",
        metadata={"ticket": "42"},
        max_output_tokens=50,
        temperature=0.3,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"].startswith("resp_")
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert body["model"] == "openai/gpt-test"
    [message] = body["output"]
    assert message["type"] == "message"
    assert message["id"].startswith("msg_")
    assert message["role"] == "assistant"
    assert message["content"] == [
        {"type": "output_text", "text": GREETING, "annotations": [], "logprobs": []}
    ]
    assert body["usage"]["output_tokens"] == 5
    assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + 5
    assert body["instructions"] == "Be brief."
    assert body["metadata"] == {"ticket": "42"}
    assert body["max_output_tokens"] == 50
    assert body["temperature"] == 0.3
    sent = upstream.requests[-1]
    assert sent["max_tokens"] == 50
    assert sent["temperature"] == 0.3
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][0]["content"].endswith("Be brief.")  # after the persona
    assert sent["messages"][1]["content"] == "hi"


def test_the_routes_answer_without_the_v1_prefix(gateway: str) -> None:
    resp = httpx.post(f"{gateway}/responses", json={"model": "gpt-test", "input": "hi"})
    assert resp.status_code == 200
    assert httpx.get(f"{gateway}/responses/{resp.json()['id']}").status_code == 200


def test_the_stream_is_openais_event_sequence(gateway: str) -> None:
    resp, comments, events = streamed(gateway, input="hi")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert comments == []
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == GREETING
    final = events[-1]["response"]
    assert final["id"] == events[0]["response"]["id"]
    assert final["output"][0]["content"][0]["text"] == GREETING
    assert final["usage"]["output_tokens"] == 5


def test_an_answer_cut_at_max_output_tokens_is_incomplete(gateway: str) -> None:
    body = create(gateway, input="hi", max_output_tokens=2).json()
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["content"][0]["text"] == "Hello from"
    _, _, events = streamed(gateway, input="hi", max_output_tokens=2)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_function_tool_round_trip(gateway: str, upstream: OpenAIUpstreamState) -> None:
    first = create(gateway, model="openai/tool-model", input="weather?", tools=[WEATHER]).json()
    [call] = first["output"]
    assert call["type"] == "function_call"
    assert call["id"].startswith("fc_")
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert upstream.requests[-1]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": WEATHER["parameters"],
            },
        }
    ]
    items = [
        {"role": "user", "content": "weather?"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
    ]
    second = create(gateway, model="openai/tool-model", input=items, tools=[WEATHER]).json()
    assert second["output"][0]["content"][0]["text"] == "Tool said: sunny"
    sent = upstream.requests[-1]["messages"]
    assert sent[-2]["role"] == "assistant"
    assert sent[-2]["tool_calls"][0]["id"] == call["call_id"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"}


def test_function_calls_stream_as_argument_deltas(gateway: str) -> None:
    _, _, events = streamed(gateway, model="openai/tool-model", input="w?", tools=[WEATHER])
    kinds = [e["type"] for e in events]
    assert kinds[2] == "response.output_item.added"
    assert events[2]["item"]["type"] == "function_call"
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert "".join(deltas) == done["arguments"] == '{"city":"Paris"}'
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_a_custom_tool_round_trip(gateway: str, upstream: OpenAIUpstreamState) -> None:
    python = {"type": "custom", "name": "python", "description": "Runs Python"}
    first = create(gateway, model="openai/tool-model", input="run", tools=[python]).json()
    [call] = first["output"]
    assert call["type"] == "custom_tool_call"
    assert (call["name"], call["input"]) == ("python", "print('hi')")
    assert upstream.requests[-1]["tools"] == [
        {"type": "custom", "custom": {"name": "python", "description": "Runs Python"}}
    ]
    output = {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "hi"}
    second = create(
        gateway,
        model="openai/tool-model",
        input=[output],
        tools=[python],
        previous_response_id=first["id"],
    ).json()
    assert second["output"][0]["content"][0]["text"] == "Tool said: hi"
    sent = upstream.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["custom"] == {"name": "python", "input": "print('hi')"}
    _, _, events = streamed(gateway, model="openai/tool-model", input="run", tools=[python])
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == "print('hi')"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 5}, "input"),
        ({"input": []}, "input"),
        ({"input": "hi", "tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
        ({"input": [{"type": "file_search_call", "id": "fs_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        ({"input": "hi", "max_output_tokens": "many"}, "max_output_tokens"),
        ({"input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
    ],
)
def test_bad_input_is_an_openai_400(gateway: str, body: dict[str, Any], param: str) -> None:
    resp = create(gateway, **body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


def test_a_body_that_is_not_json_is_a_400(gateway: str) -> None:
    resp = httpx.post(f"{gateway}/v1/responses", content=b"{nope")
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]["message"]


def test_an_unknown_model_is_a_404(gateway: str) -> None:
    resp = create(gateway, model="openai/missing", input="hi")
    assert (resp.status_code, resp.json()["error"]["code"]) == (404, "model_not_found")


def test_an_unknown_previous_response_is_a_404(gateway: str, upstream: OpenAIUpstreamState) -> None:
    resp = create(gateway, input="hi", previous_response_id="resp_nope")
    assert resp.status_code == 404
    assert resp.json()["error"]["param"] == "previous_response_id"
    assert upstream.requests == []


# --- storage and chains -----------------------------------------------------------------------


def test_a_stored_response_is_retrieved_continued_and_deleted(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, redis_url: str
) -> None:
    url = make_gateway(responses_ttl=120)
    first = create(url, input="hi", instructions="Be brief.").json()
    assert httpx.get(f"{url}/v1/responses/{first['id']}").json() == first
    with redis.Redis.from_url(redis_url) as client:
        [key] = client.keys("response:*")
        assert 110_000 < client.pttl(key) <= 120_000
    second = create(url, input="echo: again", previous_response_id=first["id"]).json()
    assert second["previous_response_id"] == first["id"]
    assert second["instructions"] is None
    assert second["output"][0]["content"][0]["text"] == "again"
    sent = upstream.requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "hi"),
        ("assistant", GREETING),
        ("user", "echo: again"),
    ]
    assert "Be brief." not in sent[0]["content"]  # instructions are not carried over
    items = httpx.get(f"{url}/v1/responses/{second['id']}/input_items").json()
    assert items["object"] == "list"
    assert [i["role"] for i in items["data"]] == ["user", "assistant", "user"]  # newest first
    assert items["data"][1]["id"] == first["output"][0]["id"]
    page = httpx.get(
        f"{url}/v1/responses/{second['id']}/input_items",
        params={"order": "asc", "limit": 1, "after": items["data"][-1]["id"]},
    ).json()
    assert [i["id"] for i in page["data"]] == [first["output"][0]["id"]]
    assert page["has_more"] is True
    deleted = httpx.delete(f"{url}/v1/responses/{first['id']}")
    assert deleted.json() == {"id": first["id"], "object": "response", "deleted": True}
    assert httpx.get(f"{url}/v1/responses/{first['id']}").status_code == 404
    assert httpx.delete(f"{url}/v1/responses/{first['id']}").status_code == 404
    resp = create(url, input="more", previous_response_id=first["id"])
    assert resp.status_code == 404
    assert create(url, input="more", previous_response_id=second["id"]).status_code == 200


def test_a_chain_of_streamed_responses_and_tool_calls(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    _, _, events = streamed(gateway, model="openai/tool-model", input="w?", tools=[WEATHER])
    first = events[-1]["response"]
    call = first["output"][0]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "rain"}
    _, _, events = streamed(
        gateway,
        model="openai/tool-model",
        input=[output],
        tools=[WEATHER],
        previous_response_id=first["id"],
    )
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Tool said: rain"
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "tool"]


def test_store_false_keeps_nothing(gateway: str, redis_url: str) -> None:
    body = create(gateway, input="hi", store=False).json()
    assert body["store"] is False
    assert httpx.get(f"{gateway}/v1/responses/{body['id']}").status_code == 404
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("response:*") == []


def test_a_bad_response_id_is_a_400_not_a_422(gateway: str) -> None:
    resp = httpx.get(f"{gateway}/v1/responses/a%20b")
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "response_id"


def keys_file(tmp_path: Path, **limits: Any) -> Path:
    path = tmp_path / "keys.json"
    owners = (("alice-laptop", "alice"), ("alice-phone", "alice"), ("bob-key", "bob"))
    entries = [
        {"hash": "sha256:" + hashlib.sha256(key.encode()).hexdigest(), "owner": owner, **limits}
        for key, owner in owners
    ]
    path.write_text(json.dumps(entries))
    return path


def test_responses_belong_to_their_owner(make_gateway: MakeGateway, tmp_path: Path) -> None:
    url = make_gateway(api_keys_file=keys_file(tmp_path))
    laptop, phone, bob = bearer("alice-laptop"), bearer("alice-phone"), bearer("bob-key")
    mine = create(url, laptop, input="hi").json()["id"]
    assert httpx.get(f"{url}/v1/responses/{mine}", headers=phone).status_code == 200
    assert create(url, phone, input="hi", previous_response_id=mine).status_code == 200
    assert httpx.get(f"{url}/v1/responses/{mine}", headers=bob).status_code == 404
    assert httpx.get(f"{url}/v1/responses/{mine}/input_items", headers=bob).status_code == 404
    resp = create(url, bob, input="hi", previous_response_id=mine)
    assert (resp.status_code, resp.json()["error"]["param"]) == (404, "previous_response_id")
    assert httpx.delete(f"{url}/v1/responses/{mine}", headers=bob).status_code == 404
    assert httpx.get(f"{url}/v1/responses/{mine}", headers=laptop).status_code == 200


def test_keys_without_an_owner_each_have_their_own(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k1", "k2"])
    mine = create(url, bearer("k1"), input="hi").json()["id"]
    assert httpx.get(f"{url}/v1/responses/{mine}", headers=bearer("k1")).status_code == 200
    assert httpx.get(f"{url}/v1/responses/{mine}", headers=bearer("k2")).status_code == 404


def test_without_redis_a_plain_request_works_and_a_chain_is_a_503(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    server = start_redis(tmp_path)
    url = make_gateway(redis_url=f"unix://{tmp_path}/redis.sock")
    server.terminate()
    server.wait(10)
    plain = create(url, input="hi")
    assert plain.status_code == 200
    assert plain.json()["output"][0]["content"][0]["text"] == GREETING
    _, _, events = streamed(url, input="hi")
    assert events[-1]["type"] == "response.completed"
    asked = len(upstream.requests)
    chained = create(url, input="hi", previous_response_id=plain.json()["id"])
    assert chained.status_code == 503
    assert chained.json()["error"]["code"] == "state_unavailable"
    assert httpx.get(f"{url}/v1/responses/{plain.json()['id']}").status_code == 503
    assert len(upstream.requests) == asked


# --- failures, billing, cache, the gateway's tools ----------------------------------------------


def test_a_failure_mid_stream_is_response_failed(gateway: str) -> None:
    resp, _, events = streamed(gateway, model="openai/cut", input="hi")
    assert resp.status_code == 200
    assert events[-1]["type"] == "response.failed"
    assert "response.completed" not in [e["type"] for e in events]
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    assert failed["error"]["message"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert httpx.get(f"{gateway}/v1/responses/{failed['id']}").status_code == 404


def test_responses_count_against_the_token_limit(make_gateway: MakeGateway, tmp_path: Path) -> None:
    url = make_gateway(api_keys_file=keys_file(tmp_path, tpm=50))
    alice, bob = bearer("alice-laptop"), bearer("bob-key")
    first = create(url, alice, input="hi")
    assert first.json()["usage"]["total_tokens"] > 50
    assert create(url, alice, input="hi").status_code == 429
    _, _, events = streamed(url, bob, input="hi")
    assert events[-1]["response"]["usage"]["total_tokens"] > 50
    assert create(url, bob, input="hi").status_code == 429


def test_a_temperature_0_response_is_served_from_the_cache(
    gateway: str, upstream: OpenAIUpstreamState
) -> None:
    first = create(gateway, input="hi", temperature=0)
    second = create(gateway, input="hi", temperature=0)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert len(upstream.requests) == 1
    assert second.json()["output"][0]["content"][0]["text"] == GREETING
    assert second.json()["id"] != first.json()["id"]


def test_the_gateways_own_tools_run_inside_and_show_as_comments(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    _, comments, events = streamed(url, model="openai/scripted", input="what is 6*7?")
    assert b": running calculator" in comments
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [item["type"] for item in final["output"]] == ["message"]
    assert final["output"][0]["content"][0]["text"].startswith("Final: ")
    assert "42" in final["output"][0]["content"][0]["text"]
    upstream.script = [[("calculator", '{"expression": "6*7"}')]]
    whole = create(url, model="openai/scripted", input="what is 6*7?").json()
    assert [item["type"] for item in whole["output"]] == ["message"]
    assert "42" in whole["output"][0]["content"][0]["text"]
