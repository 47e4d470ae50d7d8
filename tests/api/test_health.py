"""/health (per provider), /health/live and /health/ready, with and without /v1 and API_KEYS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.config import ProviderSettings
from tests.conftest import MakeGateway
from tests.fakes.ollama_upstream import VERSION, FakeOllama
from tests.fakes.openai_upstream import OpenAIUpstreamState

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
