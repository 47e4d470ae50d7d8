"""The monitoring deployment: docker-compose's `monitoring` profile, the Prometheus scrape
configuration, and a Grafana dashboard whose every query names series a real gateway exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MakeGateway

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
