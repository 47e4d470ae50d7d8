"""Per-provider health, probed concurrently and cached for a moment."""

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
        self._report: dict[str, Any] = {}
        self._at = -1e9
        self._lock = asyncio.Lock()
        self._started = time.monotonic()

    async def report(self) -> dict[str, Any]:
        """`{"status": "ok" | "degraded" | "down", "providers": {name: {...}}}`."""
        async with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                names = list(self._router.providers)
                probes = await asyncio.gather(
                    *(self._probe(self._router.providers[name]) for name in names)
                )
                providers = dict(zip(names, probes, strict=True))
                up = sum(1 for p in providers.values() if p["status"] == "up")
                status = "ok" if up == len(providers) and up else "degraded" if up else "down"
                self._report = {"status": status, "providers": providers}
                self._at = time.monotonic()
        return {**self._report, "uptime_s": round(time.monotonic() - self._started, 1)}

    async def _probe(self, provider: Provider) -> dict[str, Any]:
        breaker = self._router.breakers[provider.name]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                detail = await provider.health()
        except (GatewayError, TimeoutError) as exc:
            status, detail = "down", str(exc) or "no answer within the probe timeout"
        else:
            status = "up" if breaker.state is not BreakerState.OPEN else "down"
        return {
            "status": status,
            "detail": detail,
            "circuit": breaker.state.value,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
