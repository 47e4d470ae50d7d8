"""Supervisor mode: the gateway runs as the watchdog's child, probed every WATCHDOG_INTERVAL;
restarted when it exits or fails WATCHDOG_FAILURES probes in a row, within the restart budget.
Out of budget, the watchdog stops it and exits 1, for a supervisor above it to see."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from app.config import Settings
from app.watchdog.alerts import Alerts
from app.watchdog.budget import restart_budget
from app.watchdog.child import Child
from app.watchdog.memory import check_memory
from app.watchdog.signals import Stop
from app.watchdog.watch import Watch

log = logging.getLogger("app.watchdog")

OUT_OF_BUDGET = 1


def gateway_url(settings: Settings) -> str:
    """WATCHDOG_URL, else the gateway's HOST and PORT (a wildcard HOST as 127.0.0.1)."""
    if settings.ops.watchdog_url:
        return settings.ops.watchdog_url
    host = settings.server.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


async def supervise(
    settings: Settings, alerts: Alerts, client: httpx.AsyncClient, stop: Stop
) -> int:
    ops = settings.ops
    child = Child(ops.watchdog_argv, ops.watchdog_grace)
    watch = Watch("gateway", gateway_url(settings), ops, alerts, client)
    budget = restart_budget(ops)
    log.info(
        "supervising the gateway at %s: a probe every %g s, restart after %d failures",
        watch.url,
        ops.watchdog_interval,
        ops.watchdog_failures,
    )
    await child.start()
    watch.started()
    tick = time.monotonic()
    try:
        while True:
            tick = max(tick + ops.watchdog_interval, time.monotonic())
            exited = await _until(tick, child, stop)
            if stop.event.is_set():
                log.info("%s: stopping the gateway, then the watchdog", stop.signum.name)
                return 0
            if exited:
                watch.down(f"it exited with code {child.returncode}")
            else:
                check_memory(alerts, ops.alert_memory_percent, child.rss())
                if not await watch.check():
                    continue
            delay = budget.take(time.monotonic())
            if delay is None:
                watch.exhausted(budget, "the watchdog stops it and exits")
                return OUT_OF_BUDGET
            await child.stop()
            log.info(
                "restarting the gateway in %.1f s (%d of %d restarts in %g min)",
                delay,
                budget.recent(time.monotonic()),
                budget.restarts,
                ops.watchdog_window_minutes,
            )
            if await stop.sleep(delay):
                return 0
            await child.start()
            watch.started(restarted=True)
            tick = time.monotonic()
    finally:
        await child.stop(stop.signum)


async def _until(deadline: float, child: Child, stop: Stop) -> bool:
    """Wait until `deadline` (monotonic), the child's exit or a stop; True if the child exited."""
    exited = asyncio.ensure_future(child.wait())
    stopped = asyncio.ensure_future(stop.event.wait())
    done, pending = await asyncio.wait(
        {exited, stopped},
        timeout=max(0.0, deadline - time.monotonic()),
        return_when=asyncio.FIRST_COMPLETED,
    )
    for task in pending:
        task.cancel()
    return exited in done
