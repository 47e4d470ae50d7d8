"""Per-provider health: probes run concurrently and are cached for a moment; circuit states
are read live."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.errors import GatewayError
from app.providers.base import Provider
from app.providers.breaker import BreakerState
from app.providers.router import Router

_PROBE_TIMEOUT = 3.0


class HealthChecker:
    def __init__(self, router: Router, ttl: float = 2.0) -> None:
        self._router = router
        self._ttl = ttl
        self._probes: dict[str, dict[str, Any]] = {}
        self._at = -1e9
        self._lock = asyncio.Lock()
        self._started = time.monotonic()

    async def report(self) -> dict[str, Any]:
        """`{"status": "ok" | "degraded" | "down", "providers": {name: {...}}}`."""
        async with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                names = list(self._router.providers)
                probes = await asyncio.gather(
                    *(_probe(self._router.providers[name]) for name in names)
                )
                self._probes = dict(zip(names, probes, strict=True))
                self._at = time.monotonic()
        providers = {}
        for name, probe in self._probes.items():
            circuit = self._router.breakers[name].state
            up = probe["reachable"] and circuit is not BreakerState.OPEN
            providers[name] = {
                "status": "up" if up else "down",
                "detail": probe["detail"],
                "circuit": circuit.value,
                "latency_ms": probe["latency_ms"],
            }
        up = sum(1 for p in providers.values() if p["status"] == "up")
        status = "ok" if up == len(providers) and up else "degraded" if up else "down"
        uptime = round(time.monotonic() - self._started, 1)
        return {"status": status, "providers": providers, "uptime_s": uptime}


async def _probe(provider: Provider) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            detail = await provider.health()
    except (GatewayError, TimeoutError) as exc:
        reachable, detail = False, str(exc) or "no answer within the probe timeout"
    else:
        reachable = True
    latency = round((time.perf_counter() - started) * 1000, 1)
    return {"reachable": reachable, "detail": detail, "latency_ms": latency}
