"""GET /metrics read by Prometheus's own parser after real traffic through a real gateway, and
the percentiles of /v1/vitals."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.state.feedback import Answer, FeedbackStore
from app.state.redis import connect
from tests.conftest import MakeGateway, answer_recorded
from tests.fakes.openai_upstream import OpenAIUpstreamState

USER = [{"role": "user", "content": "hi"}]


def scrape(url: str, **headers: str) -> list[Sample]:
    resp = httpx.get(f"{url}/metrics", headers=headers, timeout=20)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(resp.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert found, f"no {name} {labels}"
    return sum(found)


def chat(url: str, model: str = "openai/gpt-test", **body: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": USER, **body},
        timeout=20,
    )


def test_a_turn_is_counted_in_tokens_durations_and_ttft(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    assert chat(url).status_code == 200
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    stream = sdk.chat.completions.create(
        model="openai/gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usages = [chunk.usage for chunk in stream if chunk.usage]
    usage = usages[-1]
    samples = scrape(url)
    gen_ai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-test",
    }
    assert value(samples, "gen_ai_client_operation_duration_seconds_count", **gen_ai) == 2
    assert value(samples, "gen_ai_server_time_to_first_token_seconds_count", **gen_ai) == 2
    output = {**gen_ai, "gen_ai_token_type": "output"}
    assert value(samples, "gen_ai_client_token_usage_count", **output) == 2
    assert value(samples, "gen_ai_client_token_usage_sum", **output) == 2 * usage.completion_tokens
    inputs = {**gen_ai, "gen_ai_token_type": "input"}
    assert value(samples, "gen_ai_client_token_usage_sum", **inputs) == 2 * usage.prompt_tokens
    route = {"http_route": "/v1/chat/completions", "http_request_method": "POST"}
    assert value(samples, "http_server_request_duration_seconds_count", **route) == 2
    assert value(samples, "gateway_provider_requests_total", outcome="ok") == 2
    ttft = value(samples, "gen_ai_server_time_to_first_token_seconds_sum", **gen_ai)
    total = value(samples, "gen_ai_client_operation_duration_seconds_sum", **gen_ai)
    assert 0 < ttft <= total


def test_routes_are_templates_and_unmatched_paths_are_other(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    for n in range(3):
        httpx.get(f"{url}/v1/sessions/not-a-session-{n}", timeout=10)
        httpx.get(f"{url}/no/such/path/{n}", timeout=10)
    samples = scrape(url)
    routes = {s.labels["http_route"] for s in samples if s.name.startswith("http_server_request")}
    assert "/v1/sessions/{session_id}" in routes
    assert "other" in routes
    assert not any("not-a-session" in r or "/no/such" in r for r in routes)
    other = {"http_route": "other", "http_response_status_code": "404"}
    assert value(samples, "http_server_request_duration_seconds_count", **other) == 3


def test_provider_errors_and_fallbacks(make_gateway: MakeGateway) -> None:
    url = make_gateway(fallback_models=["openai/gpt-test"], retry_attempts=1)
    resp = chat(url, "openai/error-500")
    assert resp.status_code == 200
    assert resp.json()["model"] == "openai/gpt-test"
    samples = scrape(url)
    assert value(samples, "gateway_fallbacks_total", gen_ai_provider_name="openai") == 1
    assert value(samples, "gateway_provider_requests_total", outcome="upstream_error") == 1
    assert value(samples, "gateway_provider_requests_total", outcome="ok") == 1
    assert value(samples, "gateway_provider_circuit_state", state="closed") == 1


def test_a_failed_turn_is_counted_with_its_error(make_gateway: MakeGateway) -> None:
    url = make_gateway(retry_attempts=1)
    assert chat(url, "openai/error-500").status_code == 502
    samples = scrape(url)
    assert (
        value(
            samples, "gen_ai_client_operation_duration_seconds_count", error_type="upstream_error"
        )
        == 1
    )
    assert value(samples, "http_server_request_duration_seconds_count",
                 http_response_status_code="502") == 1  # fmt: skip


def test_tool_calls_by_tool_and_outcome(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(enabled_tools=["calculator"])
    upstream.script = [[("calculator", json.dumps({"expression": "2+2"}))]]
    assert chat(url, "openai/scripted").status_code == 200
    upstream.script = [[("calculator", json.dumps({"expression": "2+"}))]]
    assert chat(url, "openai/scripted").status_code == 200
    samples = scrape(url)
    assert value(samples, "gateway_tool_calls_total", tool="calculator", outcome="ok") == 1
    assert value(samples, "gateway_tool_calls_total", tool="calculator", outcome="error") == 1
    assert value(samples, "gateway_tool_duration_seconds_count", tool="calculator") == 2


def test_cache_lookups_and_hits(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    for _ in range(3):
        assert chat(url, temperature=0).status_code == 200
    samples = scrape(url)
    assert value(samples, "gateway_cache_lookups_total", cache="llm", result="miss") == 1
    assert value(samples, "gateway_cache_lookups_total", cache="llm", result="hit") == 2
    # answers from the cache are not model turns
    assert value(samples, "gen_ai_client_operation_duration_seconds_count") == 1


def test_rate_limit_refusals(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k-one"], rate_limit_rpm=1)
    auth = {"Authorization": "Bearer k-one"}
    statuses = [
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "openai/gpt-test", "messages": USER},
            headers=auth,
            timeout=20,
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 429, 429]
    assert value(scrape(url), "gateway_rate_limit_refusals_total", limit="rpm") == 2


def test_feedback_by_model_pipeline_and_rating(make_gateway: MakeGateway, redis_url: str) -> None:
    url = make_gateway()

    def rate(message_id: str, rating: int) -> None:
        body = {"message_id": message_id, "rating": rating, "user_id": "alice-secret-id"}
        resp = httpx.post(f"{url}/v1/feedback", json=body, timeout=20)
        assert resp.status_code == 200, resp.text

    plain = answer_recorded(redis_url, chat(url, user="alice-secret-id").json()["id"])
    rate(plain, 1)
    rate(plain, 1)  # a repeat is not a new rating
    rate(plain, -1)  # a changed one is, and withdraws the first
    agents = "chatcmpl-a9e7"
    asyncio.run(_remember(redis_url, agents, Answer.of("pipeline/agents", [], "alice-secret-id")))
    rate(agents, 1)
    samples = scrape(url)
    plain_labels = {"model": "openai/gpt-test", "pipeline": ""}
    assert value(samples, "gateway_feedback_total", **plain_labels, rating="up") == 1
    assert value(samples, "gateway_feedback_total", **plain_labels, rating="down") == 1
    assert value(samples, "gateway_feedback_withdrawn_total", **plain_labels, rating="up") == 1
    pipeline_labels = {"model": "pipeline/agents", "pipeline": "agents"}
    assert value(samples, "gateway_feedback_total", **pipeline_labels, rating="up") == 1
    assert value(samples, "gateway_feedback_total") == 3
    assert value(samples, "gateway_feedback_withdrawn_total") == 1
    assert "secret-id" not in httpx.get(f"{url}/metrics", timeout=10).text


async def _remember(redis_url: str, answer_id: str, answer: Answer) -> None:
    """What the gateway records of an answer (here: of a pipeline's turn)."""
    client = connect(redis_url, 2.0)
    try:
        await FeedbackStore(client, ttl=60).remember([(answer_id, answer)])
    finally:
        await client.aclose()


def test_open_without_a_key_and_dependencies_are_gauges(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["k-one"])
    assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401
    samples = scrape(url)
    assert value(samples, "gateway_dependency_up", dependency="openai") == 1
    assert value(samples, "gateway_dependency_up", dependency="redis") == 1
    assert value(samples, "gateway_dependency_latency_seconds", dependency="redis") >= 0
    assert value(samples, "process_resident_memory_bytes") > 0


def test_no_label_takes_a_user_or_a_raw_path(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai/gpt-test", "messages": USER, "user": "alice-secret-id"},
        headers={"X-OpenWebUI-User-Id": "bob-secret-id"},
        timeout=20,
    )
    text = httpx.get(f"{url}/metrics", timeout=10).text
    assert "secret-id" not in text


def test_off_is_404(make_gateway: MakeGateway) -> None:
    url = make_gateway(metrics_enabled=False)
    assert chat(url).status_code == 200
    resp = httpx.get(f"{url}/metrics", timeout=10)
    assert resp.status_code == 404
    assert "METRICS_ENABLED" in resp.json()["error"]["message"]
    assert httpx.get(f"{url}/v1/vitals", timeout=10).json()["percentiles"] is None


@pytest.mark.parametrize("turns", [0, 4])
def test_vitals_percentiles_come_from_the_histograms(make_gateway: MakeGateway, turns: int) -> None:
    url = make_gateway()
    for _ in range(turns):
        assert chat(url).status_code == 200
    percentiles = httpx.get(f"{url}/v1/vitals", timeout=10).json()["percentiles"]
    for name in ("latency_ms", "ttft_ms"):
        shown = percentiles[name]
        assert set(shown) == {"p50", "p95", "p99"}
        if turns:
            assert 0 < shown["p50"] <= shown["p95"] <= shown["p99"]
        else:
            assert shown == {"p50": None, "p95": None, "p99": None}
