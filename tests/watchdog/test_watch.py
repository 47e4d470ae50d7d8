"""What the watchdog reads of a gateway that answers: its dependencies from /health and its
latency and error rate from /metrics, alerted on change; none of it restarts the gateway."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fakes.webhook import Webhook
from tests.watchdog.harness import FakeGateway, supervising, wait_for

SLOW = {"requests": 20, "seconds": 3.0, "errors": 0.5}
FAST = {"requests": 20, "seconds": 0.05, "errors": 0.0}


def test_a_dependency_down_is_reported_and_alerted_once_and_not_restarted(
    tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway, ALERT_WEBHOOK_URL=url) as (running, pid):
        running.wait_log("gateway dependency redis: up (PONG)")
        gateway.set(health={"redis": {"status": "down", "detail": "Connection refused"}})
        running.wait_log("gateway dependency redis: down (Connection refused)")
        time.sleep(1)  # three more probes see it down: still one alert
        gateway.set(health={"redis": {"status": "up", "detail": "PONG"}})
        wait_for(lambda: receiver.of("dependency_down", "resolved"), 5, "resolved", running.log)
        assert running.child_pid() == pid
    down, up = receiver.bodies
    assert (down["state"], up["state"]) == ("firing", "resolved")
    assert down["service"] == up["service"] == "gateway/redis"
    assert down["text"] == "🔴 gateway: redis is down: Connection refused"
    assert up["text"] == "✅ gateway: redis is up again"
    assert gateway.started() == 1


def test_a_gateway_that_is_live_but_not_ready_is_reported_not_restarted(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway) as (running, pid):
        down = {"openai": {"status": "down", "detail": "Connection refused"}}
        gateway.set(ready=503, health={"status": "down", "providers": down})
        running.wait_log("gateway is not ready")
        running.wait_log("gateway dependency openai: down (Connection refused)")
        time.sleep(1.5)
        assert running.child_pid() == pid
        gateway.set()
        running.wait_log("gateway is up", within=5, times=2)
    assert "probe failed" not in running.text()
    assert gateway.started() == 1


def test_latency_and_error_rate_from_metrics_alert_and_resolve(
    tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    gateway = FakeGateway(tmp_path)
    gateway.set(metrics=SLOW)
    with supervising(
        tmp_path, gateway, ALERT_WEBHOOK_URL=url, ALERT_P95_MS="1000", ALERT_ERROR_RATE="0.1"
    ) as (running, _):
        wait_for(
            lambda: receiver.of("latency_p95") and receiver.of("error_rate"),
            5,
            "both alerts",
            running.log,
        )
        gateway.set(metrics=FAST)
        resolved = ("latency_p95", "resolved"), ("error_rate", "resolved")
        wait_for(lambda: all(receiver.of(*r) for r in resolved), 5, "resolved", running.log)
    (slow,) = receiver.of("latency_p95", "firing")
    # 20 requests of 3 s, all in the bucket (2.5, 5]: the 19th of 20 is at 2.5 + 2.5 * 19/20.
    # The probes of /health/live that /metrics also counts are left out.
    assert slow["value"] == 4875
    assert slow["threshold"] == 1000
    assert slow["text"].startswith("🔴 gateway: p95 latency 4875 ms, over 1000 ms (20 requests")
    (failing,) = receiver.of("error_rate", "firing")
    assert failing["value"] == 0.5
    assert failing["threshold"] == 0.1
    assert "50.0% of requests failed (5xx), over 10.0%" in failing["text"]
    (fast,) = receiver.of("latency_p95", "resolved")
    assert fast["value"] == 49
    assert receiver.of("error_rate", "resolved")[0]["value"] == 0.0
    assert gateway.started() == 1


def test_too_few_requests_judge_nothing(tmp_path: Path, webhook: tuple[Webhook, str]) -> None:
    receiver, url = webhook
    gateway = FakeGateway(tmp_path)
    gateway.set(metrics={**SLOW, "requests": 5})
    with supervising(tmp_path, gateway, ALERT_WEBHOOK_URL=url, ALERT_P95_MS="1000") as (r, _):
        time.sleep(2)
    assert receiver.bodies == []
    assert "/metrics not read" not in r.text()


def test_no_metrics_means_no_such_alerts_and_no_error(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway, ALERT_P95_MS="1") as (running, _):
        running.wait_log("gateway serves no /metrics: no latency or error-rate alerts")
        time.sleep(1.5)
    log = running.text()
    assert log.count("serves no /metrics") == 1
    assert "WARNING" not in log
    assert "ERROR" not in log
