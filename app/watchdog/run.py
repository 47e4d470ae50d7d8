"""`python -m app watchdog`: logging, signals, the alerts' delivery, and the mode's loop."""

from __future__ import annotations

import asyncio
import logging

import httpx

from app.config import Settings
from app.ops.logging import setup_logging
from app.watchdog.alerts import Alerts
from app.watchdog.docker import watch_docker
from app.watchdog.signals import Stop
from app.watchdog.supervisor import supervise

log = logging.getLogger("app.watchdog")

_DRAIN = 10.0
"""Seconds the last alerts may take to reach the webhook before the watchdog exits."""


def run(settings: Settings) -> int:
    setup_logging(settings.server)
    for chatty in ("httpx", "httpcore"):  # a line per probe otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return asyncio.run(_run(settings))


async def _run(settings: Settings) -> int:
    stop = Stop()
    stop.install()
    ops = settings.ops
    alerts = Alerts(ops.alert_webhook_url, ops.alert_reminder_minutes)
    if not ops.alert_webhook_url:
        log.info("ALERT_WEBHOOK_URL is not set: alerts go to this log only")
    # The probes go to the gateway directly, never through a proxy from the environment.
    async with (
        httpx.AsyncClient(trust_env=False) as probes,
        httpx.AsyncClient() as webhook,
    ):
        delivery = asyncio.create_task(alerts.deliver(webhook))
        try:
            if ops.watchdog_mode == "docker":
                return await watch_docker(ops, alerts, probes, stop)
            return await supervise(settings, alerts, probes, stop)
        finally:
            await alerts.drain(_DRAIN)
            delivery.cancel()
