"""Health of the providers, Redis and knowledge (the embedder in use, Chroma): probes run
concurrently and are cached for a moment; circuit states (each provider's, and those of its
models that are not closed) are read live. Redis down makes the gateway degraded, not down:
stateless chat still answers. A provider that is on only by default (Ollama at its default URL)
and has nothing listening there is `unreachable`: merely absent, it degrades nothing, though with
no other provider up the gateway is down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from app.errors import GatewayError, ProviderUnreachable
from app.knowledge.service import Knowledge
from app.providers.base import Provider
from app.providers.breaker import BreakerState
from app.providers.router import Router
from app.state.redis import probe as probe_redis

_PROBE_TIMEOUT = 3.0


class HealthChecker:
    def __init__(
        self,
        router: Router,
        redis: aioredis.Redis,
        ttl: float = 2.0,
        by_default: frozenset[str] = frozenset(),
        knowledge: Knowledge | None = None,
    ) -> None:
        """`by_default`: the providers that are on only through a default setting."""
        self._router = router
        self._knowledge = knowledge
        self._by_default = by_default
        self._redis = redis
        self._redis_probe: dict[str, Any] = {}
        self._ttl = ttl
        self._probes: dict[str, dict[str, Any]] = {}
        self._at = -1e9
        self._lock = asyncio.Lock()
        self._started = time.monotonic()

    async def report(self) -> dict[str, Any]:
        """`{"status": "ok" | "degraded" | "down", "providers": {name: {...}}, "redis": {...}}`."""
        async with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                names = list(self._router.providers)
                *probes, self._redis_probe = await asyncio.gather(
                    *(_probe(self._router.providers[name]) for name in names),
                    probe_redis(self._redis),
                )
                self._probes = dict(zip(names, probes, strict=True))
                self._at = time.monotonic()
        providers = {}
        breakers = self._router.breakers
        for name, probe in self._probes.items():
            circuit = breakers.providers[name].state
            if probe["absent"] and name in self._by_default:
                state = "unreachable"
            elif probe["reachable"] and circuit is not BreakerState.OPEN:
                state = "up"
            else:
                state = "down"
            providers[name] = {
                "status": state,
                "detail": probe["detail"],
                "circuit": circuit.value,
                "model_circuits": {m: s.value for m, s in breakers.model_states(name).items()},
                "latency_ms": probe["latency_ms"],
            }
        up = sum(1 for p in providers.values() if p["status"] == "up")
        present = sum(1 for p in providers.values() if p["status"] != "unreachable")
        status = "ok" if up == present and up else "degraded" if up else "down"
        if status == "ok" and self._redis_probe["status"] != "up":
            status = "degraded"
        uptime = round(time.monotonic() - self._started, 1)
        report = {
            "status": status,
            "providers": providers,
            "redis": self._redis_probe,
            "uptime_s": uptime,
        }
        knowledge = self._knowledge
        if knowledge is not None and knowledge.wanted:
            report["embeddings"] = knowledge.health()
            report["chromadb"] = await knowledge.store_health()
            if status == "ok" and not knowledge.available:
                report["status"] = "degraded"
        return report


async def _probe(provider: Provider) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            detail = await provider.health()
    except (GatewayError, TimeoutError) as exc:
        reachable, detail = False, str(exc) or "no answer within the probe timeout"
        absent = isinstance(exc, ProviderUnreachable)
    else:
        reachable, absent = True, False
    latency = round((time.perf_counter() - started) * 1000, 1)
    return {"reachable": reachable, "absent": absent, "detail": detail, "latency_ms": latency}
