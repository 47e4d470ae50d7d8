"""Traces of real turns through a real gateway on loopback: the spans the SDK's in-memory exporter
is handed (their tree, names, GenAI attributes, errors, and that no content is in them), the same
turn received by a real OTLP/HTTP collector, and no OpenTelemetry SDK tracing loaded when the
endpoint is unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app.main import create_app
from app.ops.observers import observers
from tests.conftest import MakeGateway, gateway_settings
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState
from tests.fakes.otlp_receiver import create_otlp_receiver
from tests.fakes.serve import serve

REPO = Path(__file__).resolve().parent.parent.parent
QUESTION = "what is the secret word of the day"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    spans.clear()


def chat(url: str, model: str = "openai/gpt-test", **body: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": QUESTION}], **body},
        timeout=30,
    )


def turns(exporter: InMemorySpanExporter, count: int = 1) -> list[ReadableSpan]:
    """The first `count` turn spans (those without a parent), waiting for them to end: a
    streamed turn's span ends just after its last bytes are sent."""
    deadline = time.monotonic() + 10
    while True:
        found = [s for s in exporter.get_finished_spans() if s.parent is None]
        if len(found) >= count:
            return found[:count]
        assert time.monotonic() < deadline, f"{len(found)} turn spans, not {count}"
        time.sleep(0.02)


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    """`parent`'s child spans, in the order they started."""
    assert parent.context is not None
    found = [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    for span in found:
        assert span.context is not None
        assert span.context.trace_id == parent.context.trace_id
    return sorted(found, key=lambda s: s.start_time or 0)


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_turn_is_a_span_with_its_attempt_and_retrieval_as_children(
    make_gateway: MakeGateway, exporter: InMemorySpanExporter
) -> None:
    url = make_gateway(span_exporter=exporter)
    resp = chat(url)
    assert resp.status_code == 200
    (turn,) = turns(exporter)
    assert turn.name == "chat openai/gpt-test"
    assert turn.kind is SpanKind.INTERNAL
    assert turn.status.status_code is StatusCode.UNSET
    assert turn.resource.attributes["service.name"] == "ai-gateway"
    usage = resp.json()["usage"]
    seen = attributes(turn)
    ttft = seen.pop("gen_ai.response.time_to_first_chunk")
    assert turn.start_time is not None
    assert turn.end_time is not None
    assert 0 < ttft * 1e9 <= turn.end_time - turn.start_time
    assert seen == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "openai/gpt-test",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "openai/gpt-test",
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"],
        "gen_ai.response.finish_reasons": ("stop",),
    }
    retrieval, attempt = children(exporter, turn)
    assert retrieval.name == "retrieval"
    assert retrieval.kind is SpanKind.INTERNAL
    assert attributes(retrieval) == {
        "gen_ai.operation.name": "retrieval",
        "gateway.retrieval.passages": 0,
        "gateway.retrieval.memories": 0,
    }
    assert attempt.name == "chat gpt-test"
    assert attempt.kind is SpanKind.CLIENT
    assert attempt.status.status_code is StatusCode.UNSET
    assert attributes(attempt) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-test",
    }
    for child in (retrieval, attempt):
        assert child.start_time is not None
        assert child.end_time is not None
        assert turn.start_time <= child.start_time <= child.end_time <= turn.end_time


def test_a_streamed_turn_ends_its_span_with_the_stream(
    make_gateway: MakeGateway, exporter: InMemorySpanExporter
) -> None:
    url = make_gateway(span_exporter=exporter)
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    stream = sdk.chat.completions.create(
        model="openai/gpt-test",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage for chunk in stream if chunk.usage][-1]
    sdk.close()
    (turn,) = turns(exporter)
    seen = attributes(turn)
    assert seen["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert seen["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert seen["gen_ai.response.finish_reasons"] == ("stop",)
    assert [s.name for s in children(exporter, turn)] == ["retrieval", "chat gpt-test"]


def test_a_failed_turn_has_status_error_and_its_error_type(
    make_gateway: MakeGateway, exporter: InMemorySpanExporter
) -> None:
    url = make_gateway(span_exporter=exporter, retry_attempts=1)
    assert chat(url, "openai/error-500").status_code == 502
    assert chat(url, "no-such-model").status_code == 404
    failed, unknown = turns(exporter, 2)
    assert failed.name == "chat openai/error-500"
    assert failed.status.status_code is StatusCode.ERROR
    assert attributes(failed) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "openai/error-500",
        "error.type": "upstream_error",
    }
    (attempt,) = named(children(exporter, failed), "chat error-500")
    assert attempt.status.status_code is StatusCode.ERROR
    assert attributes(attempt)["error.type"] == "upstream_error"
    assert unknown.name == "chat no-such-model"
    assert unknown.status.status_code is StatusCode.ERROR
    assert attributes(unknown)["error.type"] == "model_not_found"
    assert children(exporter, unknown) == []  # refused before any provider was asked


def test_a_fallback_is_a_second_attempt_under_the_same_turn(
    make_gateway: MakeGateway, exporter: InMemorySpanExporter
) -> None:
    url = make_gateway(
        span_exporter=exporter, fallback_models=["openai/gpt-test"], retry_attempts=1
    )
    resp = chat(url, "openai/error-500")
    assert resp.status_code == 200
    (turn,) = turns(exporter)
    assert turn.status.status_code is StatusCode.UNSET
    seen = attributes(turn)
    assert seen["gen_ai.request.model"] == "openai/error-500"
    assert seen["gen_ai.response.model"] == resp.json()["model"] == "openai/gpt-test"
    first, fallback = [s for s in children(exporter, turn) if s.kind is SpanKind.CLIENT]
    assert first.name == "chat error-500"
    assert first.status.status_code is StatusCode.ERROR
    assert attributes(first)["error.type"] == "upstream_error"
    assert "gateway.fallback" not in attributes(first)
    assert fallback.name == "chat gpt-test"
    assert fallback.status.status_code is StatusCode.UNSET
    assert attributes(fallback)["gateway.fallback"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_and_each_model_step_are_children_of_the_turn(
    make_gateway: MakeGateway,
    upstream: OpenAIUpstreamState,
    exporter: InMemorySpanExporter,
    stream: bool,
) -> None:
    """The model's second step is asked while the answer is sent (streamed: as the wire's
    encoder reads the events): its attempt is the turn's child all the same."""
    url = make_gateway(span_exporter=exporter, enabled_tools=["calculator"])
    upstream.script = [[("calculator", json.dumps({"expression": "2+2"}))]]
    assert chat(url, "openai/scripted", stream=stream).status_code == 200
    upstream.script = [[("calculator", json.dumps({"expression": "2+"}))]]
    assert chat(url, "openai/scripted", stream=stream).status_code == 200
    call_ids = []
    for turn, ok in zip(turns(exporter, 2), (True, False), strict=True):
        assert turn.status.status_code is StatusCode.UNSET
        spans = children(exporter, turn)
        assert [s.name for s in spans] == [
            "retrieval",
            "chat scripted",
            "execute_tool calculator",
            "chat scripted",
        ]
        tool = spans[2]
        seen = attributes(tool)
        call_ids.append(seen.pop("gen_ai.tool.call.id"))
        assert seen.pop("error.type", None) == (None if ok else "tool_error")
        assert tool.status.status_code is (StatusCode.UNSET if ok else StatusCode.ERROR)
        assert seen == {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "calculator",
            "gen_ai.tool.type": "function",
        }
    answered = [m for r in upstream.requests for m in r["messages"] if m["role"] == "tool"]
    assert call_ids == [m["tool_call_id"] for m in answered]


def test_a_raw_completion_is_a_text_completion_turn(
    make_gateway: MakeGateway, exporter: InMemorySpanExporter
) -> None:
    url = make_gateway(span_exporter=exporter)
    resp = httpx.post(
        f"{url}/v1/completions",
        json={"model": "openai/gpt-test", "prompt": ["Say hi", "Say bye"]},
        timeout=30,
    )
    assert resp.status_code == 200
    (turn,) = turns(exporter)
    assert turn.name == "text_completion openai/gpt-test"
    seen = attributes(turn)
    assert seen["gen_ai.operation.name"] == "text_completion"
    assert seen["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert [s.name for s in children(exporter, turn)] == ["text_completion gpt-test"] * 2


def test_a_stateful_turn_holds_its_retrieval(
    make_gateway: MakeGateway, exporter: InMemorySpanExporter
) -> None:
    """/chat recalls the user's memories before it asks the engine: inside the turn's span."""
    url = make_gateway(span_exporter=exporter)
    first = httpx.post(
        f"{url}/chat", json={"user_id": "u1", "message": "My name is Alice"}, timeout=30
    )
    assert first.status_code == 200
    second = httpx.post(
        f"{url}/chat",
        json={"user_id": "u1", "session_id": first.json()["session_id"], "message": QUESTION},
        timeout=30,
    )
    assert second.status_code == 200
    _, turn = turns(exporter, 2)
    assert turn.name == "chat"  # no model named: the gateway chose it
    assert attributes(turn)["gen_ai.response.model"] == "openai/gpt-test"
    retrieval, attempt = children(exporter, turn)
    assert attributes(retrieval)["gateway.retrieval.memories"] == 1
    assert attempt.name == "chat gpt-test"


def test_an_answer_from_the_cache_is_a_turn_without_attempts(
    make_gateway: MakeGateway, exporter: InMemorySpanExporter
) -> None:
    url = make_gateway(span_exporter=exporter, metrics_enabled=False)
    for _ in range(2):
        assert chat(url, temperature=0).status_code == 200
    miss, hit = turns(exporter, 2)
    assert attributes(miss)["gateway.cache"] == "miss"
    assert attributes(miss)["gen_ai.usage.output_tokens"] > 0
    assert [s.name for s in children(exporter, miss)] == ["retrieval", "chat gpt-test"]
    seen = attributes(hit)
    assert seen["gateway.cache"] == "hit"
    assert seen["gen_ai.response.model"] == "openai/gpt-test"
    assert "gen_ai.usage.output_tokens" not in seen  # the upstream was not asked
    assert [s.name for s in children(exporter, hit)] == ["retrieval"]
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404  # traces without metrics


def test_no_message_text_key_or_user_is_in_any_span(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, exporter: InMemorySpanExporter
) -> None:
    url = make_gateway(
        span_exporter=exporter,
        enabled_tools=["calculator"],
        api_keys=["sk-gateway-secret"],
        openai_api_key="sk-upstream-secret",
        trust_user_headers=True,
    )
    auth = {"Authorization": "Bearer sk-gateway-secret", "X-OpenWebUI-User-Id": "bob-secret-id"}
    upstream.script = [[("calculator", json.dumps({"expression": "1234+4321"}))]]
    for model in ("openai/gpt-test", "openai/scripted"):
        resp = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": model,
                "messages": [{"role": "user", "content": QUESTION}],
                "user": "alice-secret-id",
            },
            headers=auth,
            timeout=30,
        )
        assert resp.status_code == 200
    turns(exporter, 2)
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} >= {"execute_tool calculator", "chat scripted"}
    said = [
        f"{s.name} {s.attributes} {s.resource.attributes} {[e.attributes for e in s.events]}"
        for s in spans
    ]
    for secret in (
        "secret",  # the question, keys, users
        GREETING,
        "1234",  # the tool's arguments
        "5555",  # and its result
        "Final:",
    ):
        assert not [line for line in said if secret in line], secret


def test_a_collector_receives_the_turn_over_otlp_http(
    openai_server: tuple[str, OpenAIUpstreamState],
) -> None:
    """The OTLP/HTTP exporter, batched, flushed when the gateway shuts down."""
    app, received = create_otlp_receiver()
    with serve(app) as collector:
        settings = gateway_settings(
            openai_base_url=openai_server[0] + "/v1",
            openai_api_key="k",
            otel_exporter_otlp_endpoint=collector + "/",
            otel_service_name="gateway-under-test",
        )
        with serve(create_app(settings)) as url:
            assert chat(url).status_code == 200
        # the lifespan's close flushed the batch
        assert received.content_types == ["application/x-protobuf"]
        (resource,) = received.resources
        assert resource["service.name"] == "gateway-under-test"
        by_name = {s.name: s for s in received.spans}
        turn = by_name["chat openai/gpt-test"]
        attempt = by_name["chat gpt-test"]
        assert attempt.parent_span_id == turn.span_id
        assert attempt.trace_id == turn.trace_id
        assert by_name["retrieval"].parent_span_id == turn.span_id
        seen = {a.key: a.value for a in turn.attributes}
        assert seen["gen_ai.response.model"].string_value == "openai/gpt-test"
        assert seen["gen_ai.usage.output_tokens"].int_value > 0


def test_unset_the_gateway_loads_no_opentelemetry_tracing() -> None:
    """Without OTEL_EXPORTER_OTLP_ENDPOINT, a gateway that answered a turn has not imported the
    tracing module, OpenTelemetry's SDK tracing or its OTLP exporter. (FastAPI and redis-py
    import OpenTelemetry's API and metrics SDK whatever the gateway does; embedded Chroma, which
    is off here, imports the SDK's tracing and the OTLP/gRPC exporter for its own telemetry.)"""
    program = f"""
import json
import sys
sys.path.insert(0, {str(REPO)!r})
import httpx
from app.main import create_app
from tests.conftest import gateway_settings
from tests.fakes.openai_upstream import create_openai_upstream
from tests.fakes.serve import serve

upstream, _ = create_openai_upstream()
with serve(upstream) as upstream_url:
    settings = gateway_settings(
        openai_base_url=upstream_url + "/v1", rag_enabled=False, memory_enabled=False
    )
    assert settings.ops.otel_exporter_otlp_endpoint == ""
    with serve(create_app(settings)) as url:
        resp = httpx.post(
            url + "/v1/chat/completions",
            json={{"model": "openai/gpt-test", "messages": [{{"role": "user", "content": "hi"}}]}},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "app.ops")))))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "app.ops.observers" in loaded  # the program did reach the hooks
    assert "app.ops.tracing" not in loaded
    assert not {m for m in loaded if m.startswith("opentelemetry.sdk.trace")}
    assert not {m for m in loaded if m.startswith("opentelemetry.exporter")}
    assert "opentelemetry.context" in loaded  # FastAPI's own, as said above


def test_with_neither_metrics_nor_tracing_no_hook_has_an_observer() -> None:
    assert observers(None, None) is None
