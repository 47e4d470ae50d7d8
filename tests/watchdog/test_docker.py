"""Docker mode against a local server that speaks the part of the Docker Engine API the watchdog
uses, on a unix socket (tests/fakes/docker_engine.py): no Docker engine runs here. The watchdog
is the real `python -m app watchdog` process."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.docker_engine import FakeContainer, FakeDocker
from tests.fakes.serve import serve
from tests.fakes.webhook import Webhook
from tests.watchdog.harness import FAST, FakeGateway, settings, wait_for, watchdog

LABEL = {"ai-gateway.watchdog": "true"}
INTERVAL = float(FAST["WATCHDOG_INTERVAL"])


@pytest.fixture
def socket_path() -> Iterator[Path]:
    """A unix socket's path, short enough for the 108 bytes a socket's path may have."""
    with tempfile.TemporaryDirectory(prefix="docker-") as directory:
        yield Path(directory) / "docker.sock"


def test_unhealthy_containers_with_the_label_are_restarted_and_no_others(
    tmp_path: Path, socket_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    sick = FakeContainer("a" * 64, "ai-gateway-gateway-1", LABEL, "unhealthy", "healthy")
    well = FakeContainer("b" * 64, "ai-gateway-gateway-2", LABEL, "healthy")
    other = FakeContainer("c" * 64, "someone-elses", {}, "unhealthy")
    docker = FakeDocker(sick, well, other)
    with serve(docker.app, uds=socket_path):
        env = settings(DOCKER_SOCKET=str(socket_path), ALERT_WEBHOOK_URL=url)
        with watchdog(env, tmp_path, "--mode", "docker") as running:
            wait_for(lambda: docker.restarts, 10, "a restart", running.log)
            wait_for(lambda: receiver.of("service_down", "resolved"), 5, "up", running.log)
            time.sleep(INTERVAL * 5)
    assert docker.restarts == [(sick.id, "2")]  # t: WATCHDOG_GRACE, in whole seconds
    assert docker.filters[0] == {"label": ["ai-gateway.watchdog=true"]}
    down, up = receiver.bodies
    assert down["service"] == up["service"] == "ai-gateway-gateway-1"
    assert down["text"].startswith("🔴 ai-gateway-gateway-1 is down for ")
    assert down["text"].endswith("Docker's health check calls it unhealthy")
    assert up["text"].endswith("down, after 1 restart(s)")
    log = running.text()
    assert "watching container ai-gateway-gateway-1 (aaaaaaaaaaaa), by its Docker health" in log
    assert "someone-elses" not in log


def test_a_container_whose_own_probe_fails_is_restarted(
    tmp_path: Path, socket_path: Path, webhook: tuple[Webhook, str]
) -> None:
    """Docker still calls it healthy; the watchdog's probe of its URL label finds it hung. The
    restart (the fake's hook) resumes the stopped process."""
    receiver, url = webhook
    gateway = FakeGateway(tmp_path)
    server = subprocess.Popen(gateway.argv)
    try:
        wait_for(gateway.answers, 10, "the stand-in gateway")
        labels = {**LABEL, "ai-gateway.watchdog.url": gateway.url}

        def resume() -> None:
            os.kill(server.pid, signal.SIGCONT)

        hung = FakeContainer("d" * 64, "gw", labels, "healthy", on_restart=resume)
        docker = FakeDocker(hung)
        with serve(docker.app, uds=socket_path):
            env = settings(
                DOCKER_SOCKET=str(socket_path), ALERT_WEBHOOK_URL=url, WATCHDOG_MODE="docker"
            )
            with watchdog(env, tmp_path) as running:
                running.wait_log("gw is up")
                stopped = time.monotonic()
                os.kill(server.pid, signal.SIGSTOP)
                wait_for(lambda: docker.restarts, 10, "a restart", running.log)
                took = time.monotonic() - stopped
                wait_for(lambda: receiver.of("service_down", "resolved"), 5, "up", running.log)
        assert docker.restarts_of(hung.id) == 1
        print(f"\ncontainer hung -> restart asked {took:.2f} s")
        assert took <= INTERVAL * 3 + float(FAST["WATCHDOG_GRACE"])
        assert "gw probe failed (3/3): /health/live: timed out" in running.text()
        assert "watching container gw (dddddddddddd), probing http://127.0.0.1:" in running.text()
    finally:
        server.kill()
        server.wait(5)


def test_each_container_has_its_own_budget_and_the_watchdog_goes_on(
    tmp_path: Path, socket_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    hopeless = FakeContainer("e" * 64, "hopeless", LABEL, "unhealthy")
    curable = FakeContainer("f" * 64, "curable", LABEL, "unhealthy", "healthy")
    docker = FakeDocker(hopeless, curable)
    with serve(docker.app, uds=socket_path):
        env = settings(
            DOCKER_SOCKET=str(socket_path),
            ALERT_WEBHOOK_URL=url,
            WATCHDOG_RESTARTS="2",
            WATCHDOG_MODE="docker",
        )
        with watchdog(env, tmp_path) as running:
            wait_for(
                lambda: receiver.of("restart_budget_exhausted"), 15, "out of budget", running.log
            )
            time.sleep(INTERVAL * 6)
            assert running.process.poll() is None
    assert docker.restarts_of(hopeless.id) == 2
    assert docker.restarts_of(curable.id) == 1
    (exhausted,) = receiver.of("restart_budget_exhausted")
    assert exhausted["service"] == "hopeless"
    assert exhausted["text"].endswith("the watchdog leaves it alone until it is healthy again")
    assert [b["service"] for b in receiver.of("service_down", "firing")].count("hopeless") == 1


def test_an_unreachable_docker_is_alerted_and_the_watchdog_waits_for_it(
    tmp_path: Path, socket_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    sick = FakeContainer("9" * 64, "gw", LABEL, "unhealthy", "healthy")
    env = settings(DOCKER_SOCKET=str(socket_path), ALERT_WEBHOOK_URL=url, WATCHDOG_MODE="docker")
    with watchdog(env, tmp_path) as running:
        wait_for(lambda: receiver.of("docker_unreachable"), 10, "unreachable", running.log)
        docker = FakeDocker(sick)
        with serve(docker.app, uds=socket_path):
            wait_for(lambda: docker.restarts, 10, "a restart once it is back", running.log)
            wait_for(lambda: receiver.of("docker_unreachable", "resolved"), 5, "back", running.log)
    (unreachable,) = receiver.of("docker_unreachable", "firing")
    assert unreachable["text"].startswith(
        f"🔴 the watchdog cannot reach Docker: Docker Engine at {socket_path}"
    )
