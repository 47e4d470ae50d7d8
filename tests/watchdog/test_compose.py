"""docker-compose.yml's watchdog service and the gateway's labels agree with the watchdog's
defaults (no Docker engine runs here to start them)."""

from __future__ import annotations

from typing import Any

import yaml

from app.config import load_settings
from app.watchdog.engine import URL_LABEL
from tests.watchdog.harness import REPO


def services() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    found: dict[str, Any] = compose["services"]
    return found


def test_the_gateway_carries_the_label_the_watchdog_looks_for_and_its_url() -> None:
    key, _, value = load_settings(_env_file=None).ops.watchdog_label.partition("=")
    labels = services()["gateway"]["labels"]
    assert labels[key] == value
    assert labels[URL_LABEL] == "http://gateway:9099"


def test_the_watchdog_service_runs_docker_mode_with_the_socket() -> None:
    watchdog = services()["watchdog"]
    assert watchdog["build"] == services()["gateway"]["build"]
    assert watchdog["command"] == ["python", "-m", "app", "watchdog"]
    assert watchdog["environment"]["WATCHDOG_MODE"] == "docker"
    socket = str(load_settings(_env_file=None).ops.docker_socket)
    assert f"{socket}:{socket}" in watchdog["volumes"]
    assert watchdog["healthcheck"] == {"disable": True}
