"""What a response-cache hit costs at the gateway, next to the other ways of answering.

Two real gateways (`python -m app serve`, each with its embedded Redis) in front of the
zero-delay fake upstream: one with the response cache on, one with LLM_CACHE_TTL=0. One client
sends, round-robin (so machine noise hits every path alike), non-stream temperature-0 requests:

    hit        the same request to the caching gateway: answered from Redis
    miss       a new request each time to the caching gateway: lookup, upstream, store
    no-cache   the same request to the gateway without the cache: the plain passthrough
    direct     the same request straight to the fake upstream

and prints p50/p99 latency per path, and each path's p50 minus direct's.

Run: python benchmarks/cache_hit.py [--rounds 500]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from run import (
    BODY,
    HEADERS,
    HERE,
    LOAD_CORE,
    TARGET_CORE,
    Child,
    free_port,
    pct,
    target_command,
    wait_ready,
)

PATHS = ("hit", "miss", "no-cache", "direct")
WARMUP = 50


async def _timed_post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], x_cache: str | None
) -> float:
    """Milliseconds to the whole answer, which must carry `X-Cache: <x_cache>` (or none)."""
    started = time.perf_counter()
    async with session.post(url, json=body, headers=HEADERS) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
    elapsed = (time.perf_counter() - started) * 1000
    if resp.headers.get("X-Cache") != x_cache:
        raise RuntimeError(f"X-Cache is {resp.headers.get('X-Cache')!r}, not {x_cache!r}")
    return elapsed


async def measure(urls: dict[str, str], rounds: int) -> dict[str, dict[str, float]]:
    same = {**BODY, "temperature": 0}
    fresh = itertools.count()
    latency: dict[str, list[float]] = {path: [] for path in PATHS}

    def body(path: str) -> dict[str, Any]:
        if path == "miss":
            text = f"Say hello, number {next(fresh)}"
            return {**same, "messages": [{"role": "user", "content": text}]}
        return same

    async with aiohttp.ClientSession() as session:
        await _timed_post(session, urls["hit"], same, "miss")  # stores the answer hits replay
        for i in range(WARMUP + rounds):
            for path in PATHS:
                x_cache = path if path in ("hit", "miss") else None
                elapsed = await _timed_post(session, urls[path], body(path), x_cache)
                if i >= WARMUP:
                    latency[path].append(elapsed)
    direct = statistics.median(latency["direct"])
    return {
        path: {
            "p50_ms": round(statistics.median(values), 3),
            "p99_ms": round(pct(values, 99), 3),
            "p50_over_direct_ms": round(statistics.median(values) - direct, 3),
        }
        for path, values in latency.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        up_port, cached_port, plain_port = free_port(), free_port(), free_port()
        upstream_url = f"http://127.0.0.1:{up_port}"
        cmd, popen = target_command("direct", up_port, "", tmp)
        children = [Child("upstream", cmd, tmp, core=LOAD_CORE, **popen)]
        gateways = {"cached": (cached_port, "3600"), "uncached": (plain_port, "0")}
        for name, (port, ttl) in gateways.items():
            (tmp / name).mkdir()
            cmd, popen = target_command("gateway", port, upstream_url, tmp / name)
            popen["env"] |= {"LLM_CACHE_TTL": ttl, "REDIS_URL": ""}
            children.append(Child(name, cmd, tmp, core=TARGET_CORE, **popen))
        try:
            for child, (port, _) in zip(children[1:], gateways.values(), strict=True):
                error = wait_ready(child, port, timeout=45.0)
                if error:
                    print(f"{child.name} not ready: {error}\n{child.tail()}")
                    return 1
            chat = "/v1/chat/completions"
            urls = {
                "hit": f"http://127.0.0.1:{cached_port}{chat}",
                "miss": f"http://127.0.0.1:{cached_port}{chat}",
                "no-cache": f"http://127.0.0.1:{plain_port}{chat}",
                "direct": f"{upstream_url}{chat}",
            }
            result = asyncio.run(measure(urls, args.rounds))
        finally:
            for child in reversed(children):
                child.stop()
    print(f"{args.rounds} requests per path, round-robin, non-stream, one connection each")
    print(f"{'path':<10} {'p50 ms':>8} {'p99 ms':>8} {'p50 - direct':>13}")
    for path, figures in result.items():
        print(
            f"{path:<10} {figures['p50_ms']:>8.3f} {figures['p99_ms']:>8.3f}"
            f" {figures['p50_over_direct_ms']:>13.3f}"
        )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "cache_hit.json").write_text(repr(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
