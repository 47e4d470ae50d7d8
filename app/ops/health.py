"""Health of the providers, Redis and knowledge (the embedder in use, Chroma): probes run
concurrently and are cached for a moment; circuit states (each provider's, and those of its
models that are not closed) are read live. Redis down makes the gateway degraded, not down:
stateless chat still answers. A provider that is on only by default (Ollama at its default URL)
and has nothing listening there is `unreachable`: merely absent, it degrades nothing, though with
no other provider up the gateway is down.

The report gives each dependency at its top level in one shape, `{"status": "healthy" |
"unhealthy", "details", "latency_ms"}`: `redis`, `chromadb` and `embeddings` (when knowledge is
on), and each provider by its name; and beside them the overall `status` (`ok`, `degraded`,
`down`), `uptime_s`, and `providers` with each provider's status as `up`, `down` or
`unreachable`, its circuits and its probe."""

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
_NOT_COUNTED = "; not running at its default URL, which does not count against health"


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
        self._knowledge = knowledge if knowledge is not None and knowledge.wanted else None
        self._by_default = by_default
        self._redis = redis
        self._ttl = ttl
        self._probes: dict[str, dict[str, Any]] = {}
        self._dependencies: dict[str, dict[str, Any]] = {}
        self._at = -1e9
        self._lock = asyncio.Lock()
        self._started = time.monotonic()

    async def _probe_all(self) -> None:
        names = list(self._router.providers)
        probes, redis, knowledge = await asyncio.gather(
            asyncio.gather(*(_probe(self._router.providers[name]) for name in names)),
            probe_redis(self._redis),
            self._probe_knowledge(),
        )
        self._probes = dict(zip(names, probes, strict=True))
        self._dependencies = {"redis": _dependency(redis["status"] == "up", redis), **knowledge}
        self._at = time.monotonic()

    async def _probe_knowledge(self) -> dict[str, dict[str, Any]]:
        knowledge = self._knowledge
        if knowledge is None:
            return {}
        embeddings, chromadb = await asyncio.gather(knowledge.health(), knowledge.store_health())
        return {"chromadb": chromadb, "embeddings": embeddings}

    async def report(self) -> dict[str, Any]:
        """The overall `status`, `uptime_s`, `providers` (`{name: {"status": "up" | "down" |
        "unreachable", "detail", "circuit", "model_circuits", "latency_ms"}}`), and each
        dependency by name as `{"status": "healthy" | "unhealthy", "details", "latency_ms"}`."""
        async with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                await self._probe_all()
        providers = {}
        named = {}
        breakers = self._router.breakers
        for name, probe in self._probes.items():
            circuit = breakers.providers[name].state
            details = probe["detail"]
            if probe["absent"] and name in self._by_default:
                state = "unreachable"
                details += _NOT_COUNTED
            elif probe["reachable"] and circuit is not BreakerState.OPEN:
                state = "up"
            else:
                state = "down"
                if circuit is BreakerState.OPEN:
                    details = f"circuit open; the probe: {details}"
            providers[name] = {
                "status": state,
                "detail": probe["detail"],
                "circuit": circuit.value,
                "model_circuits": {m: s.value for m, s in breakers.model_states(name).items()},
                "latency_ms": probe["latency_ms"],
            }
            named[name] = _dependency(state == "up", {**probe, "detail": details})
        up = sum(1 for p in providers.values() if p["status"] == "up")
        present = sum(1 for p in providers.values() if p["status"] != "unreachable")
        status = "ok" if up == present and up else "degraded" if up else "down"
        if status == "ok" and any(d["status"] != "healthy" for d in self._dependencies.values()):
            status = "degraded"
        return {
            "status": status,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "providers": providers,
            **self._dependencies,
            **named,
        }


def _dependency(healthy: bool, probe: dict[str, Any]) -> dict[str, Any]:
    """A probe (`detail`, `latency_ms`) in the report's shape for every dependency."""
    return {
        "status": "healthy" if healthy else "unhealthy",
        "details": probe["detail"],
        "latency_ms": probe["latency_ms"],
    }


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
