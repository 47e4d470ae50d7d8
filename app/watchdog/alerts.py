"""Alerts: each sent once when it starts firing, again as a reminder every
ALERT_REMINDER_MINUTES while it fires, and once when it is resolved; to the log and, when
ALERT_WEBHOOK_URL is set, as one JSON body that is generic and Slack-compatible (`text`) at once.
A webhook that fails is logged; it never stops the watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from app.watchdog.probe import describe

log = logging.getLogger("app.watchdog")

_WEBHOOK_TIMEOUT = 5.0

Value = float | str | None


@dataclass(frozen=True, slots=True)
class Alert:
    """One message: an alert that starts firing, still fires (`reminder`), or is resolved."""

    alert: str
    state: Literal["firing", "resolved"]
    service: str
    since: datetime
    text: str
    value: Value = None
    threshold: Value = None
    reminder: bool = False

    def body(self, host: str) -> dict[str, Any]:
        """The webhook's JSON: Slack reads `text`, anything else the structured fields."""
        mark = "🔴" if self.state == "firing" else "✅"
        return {
            "text": f"{mark} {self.text}",
            "alert": self.alert,
            "state": self.state,
            "service": self.service,
            "since": self.since.isoformat(timespec="seconds"),
            "value": self.value,
            "threshold": self.threshold,
            "host": host,
            "reminder": self.reminder,
        }


@dataclass(slots=True)
class _Firing:
    since: datetime
    sent: float


def lasted(since: datetime) -> str:
    """How long since `since`, for people: 45 s, 12 min, 3 h 20 min."""
    seconds = max(0, int((datetime.now(UTC) - since).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Alerts:
    """The alerts that fire now, by (alert, service), and the queue of messages to send."""

    def __init__(self, webhook_url: str, reminder_minutes: float) -> None:
        self.host = socket.gethostname()
        self._url = webhook_url
        self._reminder = reminder_minutes * 60
        self._firing: dict[tuple[str, str], _Firing] = {}
        self._queue: asyncio.Queue[Alert] = asyncio.Queue()

    def since(self, alert: str, service: str) -> datetime | None:
        """When the alert started firing, or None when it does not fire."""
        firing = self._firing.get((alert, service))
        return None if firing is None else firing.since

    def fire(
        self,
        alert: str,
        service: str,
        text: str,
        value: Value = None,
        threshold: Value = None,
        since: datetime | None = None,
    ) -> None:
        """The condition holds now: sent when it starts to, and as a reminder when one is due.
        `since`: when the condition began, if before now."""
        now = time.monotonic()
        firing = self._firing.get((alert, service))
        if firing is None:
            firing = _Firing(since or datetime.now(UTC), now)
            self._firing[alert, service] = firing
            reminder = False
        elif self._reminder and now - firing.sent >= self._reminder:
            firing.sent = now
            reminder = True
        else:
            return
        self._send(Alert(alert, "firing", service, firing.since, text, value, threshold, reminder))

    def resolve(self, alert: str, service: str, text: str, value: Value = None) -> None:
        """The condition no longer holds: sent once if the alert was firing."""
        firing = self._firing.pop((alert, service), None)
        if firing is not None:
            self._send(Alert(alert, "resolved", service, firing.since, text, value))

    def _send(self, alert: Alert) -> None:
        level = logging.INFO if alert.state == "resolved" else logging.WARNING
        still = "reminder, " if alert.reminder else ""
        log.log(level, "alert %s (%s%s): %s", alert.alert, still, alert.state, alert.text)
        if self._url:
            self._queue.put_nowait(alert)

    async def deliver(self, client: httpx.AsyncClient) -> None:
        """Post the queued alerts in order, for as long as the watchdog runs."""
        while True:
            alert = await self._queue.get()
            try:
                await self._post(client, alert)
            finally:
                self._queue.task_done()

    async def drain(self, within: float) -> None:
        """Wait (at most `within` seconds) until the queued alerts are posted."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._queue.join()

    async def _post(self, client: httpx.AsyncClient, alert: Alert) -> None:
        try:
            response = await client.post(
                self._url, json=alert.body(self.host), timeout=_WEBHOOK_TIMEOUT
            )
        except httpx.HTTPError as exc:
            log.error("alert %s not delivered to the webhook: %s", alert.alert, describe(exc))
            return
        if response.is_error:
            log.error(
                "alert %s not delivered: the webhook answered %d %s",
                alert.alert,
                response.status_code,
                response.text[:200],
            )
