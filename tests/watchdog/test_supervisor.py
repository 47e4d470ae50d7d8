"""Supervisor mode with real processes: the watchdog (`python -m app watchdog`) runs the
stand-in gateway (tests/fakes/health_server.py) as its child; the tests hang it with SIGSTOP,
crash it, and read the alerts a webhook receiver on 127.0.0.1 gets."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import free_port
from tests.fakes.webhook import Webhook
from tests.watchdog.harness import FAST, FakeGateway, settings, supervising, wait_for, watchdog

INTERVAL = float(FAST["WATCHDOG_INTERVAL"])
FAILURES = int(FAST["WATCHDOG_FAILURES"])
GRACE = float(FAST["WATCHDOG_GRACE"])
TIMEOUT = float(FAST["WATCHDOG_TIMEOUT"])


def test_a_hung_gateway_is_restarted_within_interval_times_failures_plus_grace(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway) as (running, first):
        hung = time.monotonic()
        os.kill(first, signal.SIGSTOP)
        second = wait_for(
            lambda: (pid := running.child_pid()) != first and pid,
            10,
            "a new gateway",
            running.log,
        )
        restarted = time.monotonic() - hung
        wait_for(gateway.answers, 10, "the new gateway answering", running.log)
        serving = time.monotonic() - hung
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
        assert gateway.started() == 2
    bound = INTERVAL * FAILURES + GRACE
    record_property("hang_to_restart_s", round(restarted, 2))
    record_property("hang_to_serving_s", round(serving, 2))
    print(f"\nhung -> new gateway {restarted:.2f} s, -> serving {serving:.2f} s (bound {bound} s)")
    assert restarted <= bound, running.text()
    assert second != first
    log = running.text()
    assert f"probe failed ({FAILURES}/{FAILURES}): /health/live: timed out" in log
    assert "restarting the gateway in 0.0 s (1 of 5 restarts" in log


def test_a_gateway_that_recovers_by_itself_is_not_restarted(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway) as (running, pid):
        os.kill(pid, signal.SIGSTOP)
        # The probes that time out while it is stopped are those that start in the first
        # (pause - timeout) seconds: one or two, one interval apart.
        time.sleep(TIMEOUT + 1.5 * INTERVAL)
        os.kill(pid, signal.SIGCONT)
        running.wait_log(f"probe failed (1/{FAILURES})")
        time.sleep(INTERVAL * FAILURES * 2)
        assert running.child_pid() == pid
        assert gateway.answers()
    log = running.text()
    assert f"probe failed ({FAILURES}/{FAILURES})" not in log
    assert "restarting" not in log
    assert "service_down" not in log
    assert gateway.started() == 1


def test_a_gateway_that_crashes_on_start_exhausts_the_budget_and_alerts_once(
    tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    gateway = FakeGateway(tmp_path, "--crash")
    env = settings(**gateway.settings(), WATCHDOG_RESTARTS="3", ALERT_WEBHOOK_URL=url)
    with watchdog(env, tmp_path) as running:
        code = running.wait_exit(30)
    assert code == 1, running.text()
    assert gateway.started() == 1 + 3
    exhausted = receiver.of("restart_budget_exhausted")
    assert len(exhausted) == 1, receiver.bodies
    assert exhausted[0]["state"] == "firing"
    assert exhausted[0]["value"] == 3
    assert "restart budget exhausted (3 restarts in 5 min)" in exhausted[0]["text"]
    down = receiver.of("service_down")
    assert [body["state"] for body in down] == ["firing"], receiver.bodies
    assert "exited with code 3" in down[0]["text"]
    assert len(receiver.bodies) == 2
    log = running.text()
    assert log.count("crashing on start as asked") == 4
    assert "alert restart_budget_exhausted (firing)" in log


def test_the_webhook_gets_the_down_and_the_recovered_message(
    tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway, ALERT_WEBHOOK_URL=url) as (running, pid):
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: receiver.of("service_down", "resolved"), 10, "recovered", running.log)
    down, recovered = receiver.bodies
    assert down["alert"] == recovered["alert"] == "service_down"
    assert (down["state"], recovered["state"]) == ("firing", "resolved")
    assert down["service"] == recovered["service"] == "gateway"
    assert down["host"] == socket.gethostname()
    assert down["since"] == recovered["since"]
    assert datetime.fromisoformat(down["since"]).tzinfo is not None
    assert down["text"].startswith("🔴 gateway is down for ")
    assert "3 probes failed in a row, the last: /health/live: timed out" in down["text"]
    assert recovered["text"].startswith("✅ gateway is up again, ")
    assert recovered["text"].endswith("down, after 1 restart(s)")
    assert down["reminder"] is False
    assert set(down) == {
        "text", "alert", "state", "service", "since", "value", "threshold", "host", "reminder"
    }  # fmt: skip


def test_a_gateway_that_never_comes_up_is_restarted_after_the_start_period(
    tmp_path: Path,
) -> None:
    """Failed probes do not count in the start period (before the first one passes), then they
    do."""
    gateway = FakeGateway(tmp_path, "--never-listen")
    env = settings(**gateway.settings(), WATCHDOG_START_PERIOD="1.5")
    with watchdog(env, tmp_path) as running:
        first = wait_for(running.child_pid, 10, "the gateway")
        started = time.monotonic()
        wait_for(lambda: (pid := running.child_pid()) != first and pid, 10, "a restart")
        took = time.monotonic() - started
    # the child's pid is seen a poll or so after the watchdog started it and its start period
    assert 1.5 + INTERVAL * (FAILURES - 1) - 0.1 <= took <= 1.5 + INTERVAL * FAILURES + 1
    log = running.text()
    assert log.count("probe failed (1/3): /health/live: ") == 1
    assert "restarting the gateway in 0.0 s" in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_is_passed_to_the_gateway_and_the_watchdog_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway) as (running, pid):
        child = psutil.Process(pid)
        running.process.send_signal(signum)
        assert running.wait_exit(GRACE + 3) == 0
        assert not child.is_running()
    assert f"{signum.name}: stopping the gateway, then the watchdog" in running.text()
    assert f"exit code -{signum.value}" in running.text()


def test_a_gateway_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path, "--ignore-sigterm")
    with supervising(tmp_path, gateway, WATCHDOG_GRACE="1") as (running, pid):
        child = psutil.Process(pid)
        asked = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        assert running.wait_exit(5) == 0
        took = time.monotonic() - asked
        assert not child.is_running()
    assert 1 <= took < 4
    assert f"pid {pid} still runs after 1 s: SIGKILL" in running.text()


def test_the_real_gateway_is_supervised_and_restarted_when_hung(
    tmp_path: Path,
    webhook: tuple[Webhook, str],
    openai_server: tuple[str, OpenAIUpstreamState],
    redis_url: str,
    record_property: Callable[[str, object], None],
) -> None:
    """`python -m app serve` (the default WATCHDOG_COMMAND) with the fake upstream; hung with
    SIGSTOP, it is stopped (SIGTERM, resumed to act on it) and started again."""
    receiver, hook = webhook
    upstream, _ = openai_server
    port = free_port()
    interval, failures, grace = 0.5, 3, 5.0
    env = settings(
        PORT=str(port),
        OPENAI_BASE_URL=f"{upstream}/v1",
        OPENAI_API_KEY="upstream-key",
        REDIS_URL=redis_url,
        DATA_DIR=str(tmp_path / "data"),
        RAG_ENABLED="false",  # no embedder to load: it starts in seconds, not 10-20
        MEMORY_ENABLED="false",
        ALERT_WEBHOOK_URL=hook,
        WATCHDOG_INTERVAL=str(interval),
        WATCHDOG_TIMEOUT="0.4",
        WATCHDOG_FAILURES=str(failures),
        WATCHDOG_GRACE=str(grace),
        WATCHDOG_START_PERIOD="60",
    )
    url = f"http://127.0.0.1:{port}"
    with watchdog(env, tmp_path) as running:
        running.wait_log("gateway is up", within=60)
        first = running.child_pid()
        assert first is not None
        assert httpx.get(f"{url}/v1/models", timeout=5).status_code == 200
        hung = time.monotonic()
        os.kill(first, signal.SIGSTOP)
        wait_for(lambda: (pid := running.child_pid()) != first and pid, 30, "a new gateway")
        restarted = time.monotonic() - hung
        running.wait_log("gateway is up", within=60, times=2)
        serving = time.monotonic() - hung
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        assert receiver.of("service_down", "resolved")
    bound = interval * failures + grace
    record_property("real_hang_to_restart_s", round(restarted, 2))
    record_property("real_hang_to_serving_s", round(serving, 2))
    print(f"\nreal gateway hung: new {restarted:.2f} s, serving {serving:.2f} s (bound {bound})")
    assert restarted <= bound, running.text()
    log = running.text()
    assert "Application shutdown complete" in log  # it stopped gracefully, not by SIGKILL
    assert "SIGKILL" not in log
