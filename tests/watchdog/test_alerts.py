"""Alerts: once per change of state, reminders while firing, recovery announced; delivered to a
real webhook receiver on loopback, in order; a failing webhook is logged and costs nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from app.watchdog.alerts import Alerts
from tests.fakes.serve import free_port
from tests.fakes.webhook import Webhook


@asynccontextmanager
async def delivering(alerts: Alerts) -> AsyncIterator[None]:
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(alerts.deliver(client))
        try:
            yield
            await alerts.drain(5)
        finally:
            task.cancel()


async def test_an_alert_is_sent_once_per_change_of_state(webhook: tuple[Webhook, str]) -> None:
    receiver, url = webhook
    alerts = Alerts(url, reminder_minutes=60)
    async with delivering(alerts):
        for _ in range(3):
            alerts.fire("latency_p95", "gateway", "slow", value=4875, threshold=1000)
        assert alerts.since("latency_p95", "gateway") is not None
        alerts.resolve("latency_p95", "gateway", "fast again", value=49)
        alerts.resolve("latency_p95", "gateway", "fast again", value=49)
        alerts.fire("latency_p95", "gateway", "slow again")
    states = [(body["state"], body["text"]) for body in receiver.bodies]
    assert states == [
        ("firing", "🔴 slow"),
        ("resolved", "✅ fast again"),
        ("firing", "🔴 slow again"),
    ]
    first, resolved, _ = receiver.bodies
    assert (first["value"], first["threshold"]) == (4875, 1000)
    assert (resolved["value"], resolved["threshold"]) == (49, None)
    assert resolved["since"] == first["since"]


async def test_a_firing_alert_is_repeated_after_the_reminder_interval(
    webhook: tuple[Webhook, str],
) -> None:
    receiver, url = webhook
    alerts = Alerts(url, reminder_minutes=0.2 / 60)
    async with delivering(alerts):
        alerts.fire("memory_pressure", "host", "93% in use")
        alerts.fire("memory_pressure", "host", "93% in use")
        await asyncio.sleep(0.25)
        alerts.fire("memory_pressure", "host", "94% in use")
        alerts.fire("memory_pressure", "host", "94% in use")
    assert [(b["text"], b["reminder"]) for b in receiver.bodies] == [
        ("🔴 93% in use", False),
        ("🔴 94% in use", True),
    ]
    assert receiver.bodies[0]["since"] == receiver.bodies[1]["since"]


async def test_no_reminders_when_the_interval_is_0(webhook: tuple[Webhook, str]) -> None:
    receiver, url = webhook
    alerts = Alerts(url, reminder_minutes=0)
    async with delivering(alerts):
        alerts.fire("memory_pressure", "host", "93% in use")
        await asyncio.sleep(0.05)
        alerts.fire("memory_pressure", "host", "93% in use")
    assert len(receiver.bodies) == 1


@pytest.mark.parametrize("answer", ["refused", "500"])
async def test_a_failing_webhook_is_logged_and_later_alerts_still_go_out(
    webhook: tuple[Webhook, str], caplog: pytest.LogCaptureFixture, answer: str
) -> None:
    receiver, url = webhook
    receiver.status = 500
    if answer == "refused":
        url = f"http://127.0.0.1:{free_port()}/hook"
    alerts = Alerts(url, reminder_minutes=0)
    with caplog.at_level(logging.INFO, logger="app.watchdog"):
        async with delivering(alerts):
            alerts.fire("service_down", "gateway", "gateway is down")
            alerts.resolve("service_down", "gateway", "gateway is up again")
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 2
    reason = "answered 500" if answer == "500" else "not delivered to the webhook"
    assert all(reason in message for message in failures), failures
    logged = [r.getMessage() for r in caplog.records if r.message.startswith("alert ")]
    assert "alert service_down (firing): gateway is down" in logged
    assert "alert service_down (resolved): gateway is up again" in logged


async def test_without_a_webhook_alerts_go_to_the_log_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerts = Alerts("", reminder_minutes=0)
    with caplog.at_level(logging.INFO, logger="app.watchdog"):
        async with delivering(alerts):
            alerts.fire("service_down", "gateway", "gateway is down")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "alert service_down (firing): gateway is down"
