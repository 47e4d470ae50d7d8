"""The monitoring deployment: docker-compose's `monitoring` profile, the Prometheus scrape
configuration, and a Grafana dashboard whose every query names series a real gateway exposes
and is evaluated by a real Prometheus (Debian's, from scripts/install-test-tools) scraping a real
gateway."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MakeGateway
from tests.fakes.serve import free_port

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
_SERIES = re.compile(r"\b(?:http_server|gen_ai|gateway|process)_[a-z_]+\b")
_LABELS = re.compile(r"\bby \([^)]*\)|\{[^}]*\}")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/ai-gateway.json").read_text())
    return loaded


def queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def family(series: str) -> str:
    for suffix in _SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_every_dashboard_query_names_an_exposed_family(make_gateway: MakeGateway) -> None:
    url = make_gateway(fallback_models=["openai/gpt-test"], retry_attempts=1)
    for model in ("openai/gpt-test", "openai/error-500"):
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            timeout=20,
        )
    exposed = {f.name for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    named = {
        family(series) for expr in queries() for series in _SERIES.findall(_LABELS.sub("", expr))
    }
    assert len(named) >= 15
    # the embedder's queue is exposed when the local embedder runs, as in this gateway
    assert named <= exposed, sorted(named - exposed)


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "ai-gateway"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in board["panels"]}
    for wanted in ("Request latency", "Time to first token", "Cache hit rate", "Tokens per second"):
        assert wanted in titles
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")")


def test_compose_runs_prometheus_and_grafana_under_the_monitoring_profile() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = scrape["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["gateway:9099"]
    assert "9099:9099" in services["gateway"]["ports"]


def test_compose_runs_workers_and_a_broker_under_the_scale_profile() -> None:
    """`BROKER_URL=nats://nats:4222 docker compose --profile scale up --scale worker=N`: the
    workers run `python -m app worker` with the gateway's providers and state, the broker keeps
    its streams on a volume, and the gateway takes BROKER_URL (empty by default)."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    worker, nats, gateway = services["worker"], services["nats"], services["gateway"]
    assert worker["profiles"] == nats["profiles"] == ["scale"]
    assert worker["command"] == ["python", "-m", "app", "worker"]
    assert "container_name" not in worker  # --scale needs it unnamed
    assert "ports" not in worker
    shared = ("OLLAMA_BASE_URL", "REDIS_URL", "CHROMA_HOST", "DEFAULT_MODEL")
    assert all(worker["environment"][name] == gateway["environment"][name] for name in shared)
    assert worker["environment"]["BROKER_URL"].startswith("${BROKER_URL:?")
    assert gateway["environment"]["BROKER_URL"] == "${BROKER_URL:-}"
    assert "-js" in nats["command"]
    assert "profiles" not in gateway


@contextmanager
def running_prometheus(directory: Path, target: str) -> Iterator[str]:
    """A Prometheus server on loopback scraping `target` (host:port) every second with the
    repository's scrape job; yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is missing: run scripts/install-test-tools")
    job = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]
    job["static_configs"] = [{"targets": [target]}]
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})
    )
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=15)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = resp.json()
    assert resp.status_code == 200, (expr, body)
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_a_real_prometheus_evaluates_every_dashboard_query(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    gateway = make_gateway(fallback_models=["openai/gpt-test"], retry_attempts=1)
    with running_prometheus(tmp_path, gateway.removeprefix("http://")) as prom:
        evaluate_the_dashboard(gateway, prom)


def evaluate_the_dashboard(gateway: str, prom: str) -> None:
    deadline = time.monotonic() + 60
    rounds = 0
    while True:  # traffic across several scrapes, so that rates have two points
        for model in ("openai/gpt-test", "openai/error-500"):
            httpx.post(
                f"{gateway}/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                      "temperature": 0},
                timeout=20,
            )  # fmt: skip
        rounds += 1
        samples = query(prom, 'count_over_time(up{job="ai-gateway"}[1m])')
        if samples and float(samples[0]["value"][1]) >= 4 and rounds >= 4:
            break
        assert time.monotonic() < deadline, "Prometheus did not scrape the gateway"
        time.sleep(0.5)
    assert query(prom, 'up{job="ai-gateway"}')[0]["value"][1] == "1"
    empty = []
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "15s").replace("$__range", "5m")
            if not query(prom, expr):
                empty.append(panel["title"])
    # only what this traffic cannot show: no tool ran, no key was limited, no circuit opened
    assert set(empty) <= {
        "Rate-limit refusals",
        "Tool calls by tool and outcome",
        "Tool duration p95",
        "Circuit breakers (1 = in that state)",
        "Failed model turns by error",
    }, empty
