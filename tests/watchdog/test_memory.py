"""Memory pressure: the machine's memory in use against ALERT_MEMORY_PERCENT, with the
supervised gateway's resident memory named, reminded while it lasts."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from tests.fakes.webhook import Webhook
from tests.watchdog.harness import FakeGateway, supervising, wait_for


def test_memory_over_the_threshold_alerts_once_then_reminds(
    tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    gateway = FakeGateway(tmp_path)
    with supervising(
        tmp_path,
        gateway,
        ALERT_WEBHOOK_URL=url,
        ALERT_MEMORY_PERCENT="0.1",  # any machine uses more
        ALERT_REMINDER_MINUTES=str(0.8 / 60),
    ) as (running, _):
        wait_for(lambda: len(receiver.bodies) >= 2, 5, "the alert and a reminder", running.log)
    first, reminder = receiver.bodies[:2]
    assert first["alert"] == reminder["alert"] == "memory_pressure"
    assert first["service"] == socket.gethostname()
    assert (first["reminder"], reminder["reminder"]) == (False, True)
    assert first["since"] == reminder["since"]
    assert first["threshold"] == 0.1
    assert 0.1 <= first["value"] <= 100
    assert re.fullmatch(
        r"🔴 memory pressure on .+: \d+% in use, threshold 0.1%; the gateway uses \d+ MiB",
        first["text"],
    ), first["text"]
    assert "alert memory_pressure (reminder, firing)" in running.text()


def test_memory_under_the_threshold_says_nothing(
    tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    receiver, url = webhook
    gateway = FakeGateway(tmp_path)
    with supervising(tmp_path, gateway, ALERT_WEBHOOK_URL=url, ALERT_MEMORY_PERCENT="100") as (
        running,
        _,
    ):
        running.wait_log("gateway dependency redis: up")
    assert receiver.bodies == []
