"""Memory pressure: the machine's memory in use (psutil's `virtual_memory().percent`, what the
kernel could not give to a new process without reclaiming), against ALERT_MEMORY_PERCENT. In a
container that is the host's, as /proc/meminfo shows it there."""

from __future__ import annotations

import psutil

from app.watchdog.alerts import Alerts

MEMORY = "memory_pressure"


def check_memory(alerts: Alerts, threshold: float, rss: int | None = None) -> None:
    """Fire or resolve the memory alert; `rss`: the supervised gateway's resident bytes, named in
    the message."""
    if not threshold:
        return
    used = psutil.virtual_memory().percent
    gateway = "" if rss is None else f"; the gateway uses {rss / 2**20:.0f} MiB"
    if used >= threshold:
        alerts.fire(
            MEMORY,
            alerts.host,
            f"memory pressure on {alerts.host}: {used:.0f}% in use, threshold "
            f"{threshold:g}%{gateway}",
            value=used,
            threshold=threshold,
        )
    else:
        alerts.resolve(
            MEMORY, alerts.host, f"memory on {alerts.host} back to {used:.0f}% in use", value=used
        )
