"""/health (every dependency, each provider), /health/live and /health/ready, with and without
/v1 and API_KEYS."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import ProviderSettings
from tests.conftest import MakeGateway, start_redis
from tests.fakes.ollama_upstream import VERSION, FakeOllama
from tests.fakes.openai_upstream import OpenAIUpstreamState, create_openai_upstream
from tests.fakes.serve import serve

DOWN = "http://127.0.0.1:9"
PREFIXES = ("", "/v1")
NO_OPENAI: dict[str, Any] = {"openai_base_url": "", "openai_api_key": ""}


def get(url: str, path: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", timeout=20)


def test_all_up_is_ok(make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]) -> None:
    ollama_url, _ = ollama_server
    url = make_gateway(ollama_base_url=ollama_url)
    for prefix in PREFIXES:
        resp = get(url, f"{prefix}/health")
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert report["status"] == "ok"
        assert set(report["providers"]) == {"ollama", "openai"}
        for provider in report["providers"].values():
            assert provider["status"] == "up"
            assert provider["circuit"] == "closed"
            assert isinstance(provider["detail"], str)
            assert provider["detail"]
            assert provider["latency_ms"] >= 0
        assert report["providers"]["ollama"]["detail"] == f"ollama {VERSION}"
        assert isinstance(report["uptime_s"], int | float)


def dependency(report: dict[str, Any], name: str) -> dict[str, Any]:
    """`report[name]`, checked to be in the one shape every dependency has."""
    found: dict[str, Any] = report[name]
    assert set(found) - {"embedder"} == {"status", "details", "latency_ms"}, name
    assert found["status"] in {"healthy", "unhealthy"}
    assert isinstance(found["details"], str)
    assert found["details"], name
    return found


def test_every_dependency_is_listed_beside_the_overall_status(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    ollama_url, _ = ollama_server
    url = make_gateway(ollama_base_url=ollama_url)
    report = get(url, "/health").json()
    assert set(report) == {
        "status",
        "uptime_s",
        "providers",
        "redis",
        "chromadb",
        "embeddings",
        "ollama",
        "openai",
    }
    assert report["status"] == "ok"
    for name in ("redis", "chromadb", "embeddings", "ollama", "openai"):
        found = dependency(report, name)
        assert found["status"] == "healthy", (name, found)
        assert isinstance(found["latency_ms"], int | float)
        assert found["latency_ms"] >= 0
    assert report["redis"]["details"] == "PONG"
    assert report["chromadb"]["details"] == "embedded, 0 document collections"
    assert report["embeddings"]["details"] == "local model all-MiniLM-L6-v2, 384 dims"
    assert report["embeddings"]["latency_ms"] > 0  # a word was embedded
    assert report["embeddings"]["embedder"] == {
        "kind": "local",
        "model": "all-MiniLM-L6-v2",
        "dimension": 384,
    }
    assert report["ollama"]["details"] == f"ollama {VERSION}"
    assert report["ollama"]["latency_ms"] == report["providers"]["ollama"]["latency_ms"]
    assert report["providers"]["ollama"]["status"] == "up"


def test_redis_stopped_is_unhealthy_with_details(make_gateway: MakeGateway, tmp_path: Path) -> None:
    process = start_redis(tmp_path)
    try:
        url = make_gateway(redis_url=f"unix://{tmp_path}/redis.sock")
        assert dependency(get(url, "/health").json(), "redis")["status"] == "healthy"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        time.sleep(2.1)  # the probes are cached for 2 s
        resp = get(url, "/health")
        assert resp.status_code == 200
        report = resp.json()
        assert report["status"] == "degraded"
        redis = dependency(report, "redis")
        assert redis["status"] == "unhealthy"
        assert f"{tmp_path}/redis.sock" in redis["details"]
        assert "Connection refused" in redis["details"]
        assert redis["latency_ms"] >= 0
        assert report["openai"]["status"] == "healthy"
        assert report["providers"]["openai"]["status"] == "up"
    finally:
        process.kill()
        process.wait(10)


def test_an_embedder_whose_provider_goes_away_is_unhealthy(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    """The embeddings probe embeds a word for real: here through a provider's model (the local
    model does not load), until the provider's server stops."""
    app, state = create_openai_upstream()
    with serve(app) as upstream_url:
        url = make_gateway(
            openai_base_url=f"{upstream_url}/v1",
            embedding_model=str(tmp_path / "no-such-model"),
            embedding_fallback_model="openai/embed-test",
        )
        embeddings = dependency(get(url, "/health").json(), "embeddings")
        assert embeddings["status"] == "healthy"
        assert embeddings["details"] == "provider model openai/embed-test, 8 dims"
        assert embeddings["latency_ms"] > 0
        assert any(r.get("input") == ["health"] for r in state.requests)
    time.sleep(2.1)
    report = get(url, "/health").json()
    embeddings = dependency(report, "embeddings")
    assert embeddings["status"] == "unhealthy"
    assert "cannot connect" in embeddings["details"]
    assert dependency(report, "openai")["status"] == "unhealthy"
    assert report["status"] == "down"


def test_without_knowledge_there_is_no_chroma_or_embedder_to_list(
    make_gateway: MakeGateway,
) -> None:
    report = get(make_gateway(rag_enabled=False, memory_enabled=False), "/health").json()
    assert set(report) == {"status", "uptime_s", "providers", "redis", "openai"}
    assert report["status"] == "ok"


def test_one_provider_down_is_degraded(
    make_gateway: MakeGateway, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    upstream_url, _ = openai_server
    url = make_gateway(llamacpp_base_url=DOWN)
    resp = get(url, "/health")
    assert resp.status_code == 200
    report = resp.json()
    assert report["status"] == "degraded"
    assert report["providers"]["openai"]["status"] == "up"
    assert report["providers"]["openai"]["detail"] == f"{upstream_url}/v1"
    down = report["providers"]["llamacpp"]
    assert down["status"] == "down"
    assert down["circuit"] == "closed"
    assert down["detail"].startswith("llamacpp:")
    assert "connect" in down["detail"]
    assert dependency(report, "llamacpp") == {
        "status": "unhealthy",
        "details": down["detail"],
        "latency_ms": down["latency_ms"],
    }
    assert dependency(report, "openai")["status"] == "healthy"
    for prefix in PREFIXES:
        assert get(url, f"{prefix}/health/ready").json() == {"status": "ready"}


def test_every_provider_down_is_503(make_gateway: MakeGateway) -> None:
    url = make_gateway(openai_base_url=f"{DOWN}/v1", ollama_base_url=DOWN)
    for prefix in PREFIXES:
        resp = get(url, f"{prefix}/health")
        assert resp.status_code == 503
        report = resp.json()
        assert report["status"] == "down"
        assert {name: p["status"] for name, p in report["providers"].items()} == {
            "ollama": "down",
            "openai": "down",
        }
        assert report["providers"]["ollama"]["detail"].startswith("ollama:")
        ready = get(url, f"{prefix}/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not ready"}
        live = get(url, f"{prefix}/health/live")
        assert live.status_code == 200
        assert live.json() == {"status": "ok"}


@pytest.fixture
def no_ollama_at_its_default_url() -> str:
    """Ollama's default URL, where nothing listens on this machine (else the test is skipped)."""
    url = ProviderSettings.model_fields["ollama_base_url"].default
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return str(url)
    pytest.skip(f"something answers at {url}")


def test_ollama_absent_at_its_default_url_does_not_degrade_health(
    make_gateway: MakeGateway, no_ollama_at_its_default_url: str
) -> None:
    """A default install whose Ollama is not running: reported, but the gateway is ok."""
    url = make_gateway(ollama_base_url=no_ollama_at_its_default_url)
    resp = get(url, "/health")
    assert resp.status_code == 200
    report = resp.json()
    assert report["status"] == "ok"
    assert report["providers"]["openai"]["status"] == "up"
    absent = report["providers"]["ollama"]
    assert absent["status"] == "unreachable"
    assert absent["detail"].startswith("ollama: cannot connect")
    ollama = dependency(report, "ollama")
    assert ollama["status"] == "unhealthy"
    assert ollama["details"].endswith(
        "not running at its default URL, which does not count against health"
    )


def test_ollama_absent_at_its_default_url_and_nothing_else_up_is_down(
    make_gateway: MakeGateway, no_ollama_at_its_default_url: str
) -> None:
    url = make_gateway(ollama_base_url=no_ollama_at_its_default_url, **NO_OPENAI)
    resp = get(url, "/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "down"
    assert resp.json()["providers"]["ollama"]["status"] == "unreachable"
    assert get(url, "/health/ready").status_code == 503


def test_ollama_down_at_a_url_that_was_set_degrades_health(make_gateway: MakeGateway) -> None:
    report = get(make_gateway(ollama_base_url=DOWN), "/health").json()
    assert report["status"] == "degraded"
    assert report["providers"]["ollama"]["status"] == "down"


def test_no_provider_at_all_is_down(make_gateway: MakeGateway) -> None:
    url = make_gateway(**NO_OPENAI)
    resp = get(url, "/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "down"
    assert resp.json()["providers"] == {}
    assert get(url, "/health/ready").status_code == 503
    assert get(url, "/health/live").status_code == 200


def test_an_open_circuit_marks_a_reachable_provider_down(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    """One broken model opens its own circuit only; a second one failing is the provider
    failing, and opens the provider's."""
    ollama_url, _ = ollama_server
    url = make_gateway(
        ollama_base_url=ollama_url, retry_attempts=1, breaker_failures=1, breaker_reset=60
    )

    def fail(model: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 502

    fail("openai/error-500")
    report = get(url, "/health").json()
    assert report["status"] == "ok"
    assert report["providers"]["openai"]["status"] == "up"
    assert report["providers"]["openai"]["circuit"] == "closed"
    assert report["providers"]["openai"]["model_circuits"] == {"error-500": "open"}
    fail("openai/flaky")
    resp = get(url, "/health")
    assert resp.status_code == 200
    report = resp.json()
    assert report["status"] == "degraded"
    tripped = report["providers"]["openai"]
    assert tripped["circuit"] == "open"
    assert tripped["status"] == "down"
    openai = dependency(report, "openai")
    assert openai["status"] == "unhealthy"
    assert openai["details"].startswith("circuit open; the probe: ")
    assert tripped["model_circuits"] == {"error-500": "open", "flaky": "open"}
    assert report["providers"]["ollama"]["status"] == "up"
    assert report["providers"]["ollama"]["circuit"] == "closed"
    assert report["providers"]["ollama"]["model_circuits"] == {}
    assert get(url, "/health/ready").status_code == 200


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_health_needs_no_key_when_api_keys_is_set(
    make_gateway: MakeGateway, prefix: str, path: str
) -> None:
    url = make_gateway(api_keys=["secret"])
    resp = get(url, f"{prefix}{path}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] in {"ok", "ready"}
    # ...while the rest of the API does need it.
    assert get(url, f"{prefix}/models").status_code == 401
