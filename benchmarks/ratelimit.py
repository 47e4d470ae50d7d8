"""What rate limiting adds to a request.

1. In process: `RateLimitMiddleware` around a no-op app, called N times with a key that has no
   limits (it never reaches Redis) and with keys that have RPM, or RPM and TPM, too high to be
   reached; plus `charge()`. A real redis-server on a unix socket, as the embedded one; uvloop,
   as the gateway runs.
2. End to end: one gateway (`python -m app serve`, on core 0) in front of the zero-delay fake
   upstream, with API_KEYS_FILE holding the same two kinds of key; non-stream chat requests
   alternate between them, so machine noise hits both alike.

The added latency is the difference of the medians (and p99s). Writes results/ratelimit.json.

Run: python benchmarks/ratelimit.py [--calls 20000] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import uvloop
from run import (
    BODY,
    HERE,
    KEY,
    PATH,
    ROOT,
    TARGET_CORE,
    Child,
    free_port,
    target_command,
    wait_ready,
)

sys.path.insert(0, str(ROOT))

from app.security.identity import Identity
from app.security.ratelimit import RateLimitMiddleware
from app.state.ratelimit import RateLimiter
from app.state.redis import EmbeddedRedis, connect

HUGE = 10**9  # requests and tokens per minute no run reaches
LIMITED_KEY = "sk-bench-limited"
KEYS = {
    "unlimited": Identity(key_id="000000000000", owner="bench"),
    "rpm": Identity(key_id="111111111111", owner="bench", rpm=HUGE),
    "rpm+tpm": Identity(key_id="222222222222", owner="bench", rpm=HUGE, tpm=HUGE),
}


def stats(samples_us: list[float]) -> dict[str, float]:
    ordered = sorted(samples_us)
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)], 1),
    }


async def in_process(redis_url: str, calls: int) -> dict[str, Any]:
    redis = connect(redis_url, 2.0)
    limiter = RateLimiter(redis, fail_open=False)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    middleware = RateLimitMiddleware(app)
    services = SimpleNamespace(limiter=limiter)

    async def receive() -> Any:
        return {}

    async def send(message: Any) -> None:
        pass

    samples: dict[str, list[float]] = {name: [] for name in [*KEYS, "charge"]}
    try:
        for round_ in range(calls + 500):  # the first 500 are warm-up
            for name, identity in KEYS.items():
                scope = {
                    "type": "http",
                    "path": PATH,
                    "state": {"services": services, "identity": identity},
                }
                started = time.perf_counter()
                await middleware(scope, receive, send)
                elapsed = (time.perf_counter() - started) * 1e6
                if round_ >= 500:
                    samples[name].append(elapsed)
            started = time.perf_counter()
            await limiter.charge(KEYS["rpm+tpm"], 100)
            if round_ >= 500:
                samples["charge"].append((time.perf_counter() - started) * 1e6)
    finally:
        await redis.aclose()
    return {name: stats(values) for name, values in samples.items()}


async def end_to_end(port: int, requests: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{PATH}"
    keys = {"unlimited": KEY, "rpm+tpm": LIMITED_KEY}
    samples: dict[str, list[float]] = {name: [] for name in keys}
    async with aiohttp.ClientSession() as session:
        for round_ in range(requests + 200):  # the first 200 are warm-up
            for name, key in keys.items():
                started = time.perf_counter()
                async with session.post(
                    url, json=BODY, headers={"Authorization": f"Bearer {key}"}
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{name}: HTTP {resp.status}")
                if round_ >= 200:
                    samples[name].append((time.perf_counter() - started) * 1e6)
    return {name: stats(values) for name, values in samples.items()}


def write_keys(path: Path) -> None:
    def item(key: str, limit: int | None) -> dict[str, Any]:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return {"hash": f"sha256:{digest}", "owner": "bench", "rpm": limit, "tpm": limit}

    path.write_text(json.dumps([item(KEY, None), item(LIMITED_KEY, HUGE)]))


def added(result: dict[str, Any], name: str) -> dict[str, float]:
    base, with_limits = result["unlimited"], result[name]
    return {k: round(with_limits[k] - base[k], 1) for k in ("median_us", "p99_us")}


async def main_async(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    redis = EmbeddedRedis(tmp / "redis")
    await redis.start()
    try:
        result: dict[str, Any] = {"in_process": await in_process(redis.url, args.calls)}
        up_port, gw_port = free_port(), free_port()
        cmd, popen = target_command("direct", up_port, "", tmp)
        upstream = Child("upstream", cmd, tmp, core="1", **popen)
        cmd, popen = target_command("gateway", gw_port, f"http://127.0.0.1:{up_port}", tmp)
        write_keys(tmp / "keys.json")
        popen["env"].pop("API_KEYS")
        popen["env"] |= {"API_KEYS_FILE": str(tmp / "keys.json"), "REDIS_URL": redis.url}
        gateway = Child("gateway", cmd, tmp, core=TARGET_CORE, **popen)
        try:
            error = await asyncio.to_thread(wait_ready, gateway, gw_port, 45.0)
            if error:
                raise RuntimeError(f"gateway not ready: {error}\n{gateway.tail()}")
            result["end_to_end"] = await end_to_end(gw_port, args.requests)
        finally:
            gateway.stop()
            upstream.stop()
    finally:
        await redis.stop()
    result["added_in_process"] = {n: added(result["in_process"], n) for n in ("rpm", "rpm+tpm")}
    result["added_end_to_end"] = {"rpm+tpm": added(result["end_to_end"], "rpm+tpm")}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="in-process calls per key")
    parser.add_argument("--requests", type=int, default=3000, help="HTTP requests per key")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = uvloop.run(main_async(args, Path(scratch)))
    for section, values in result.items():
        print(f"{section}:")
        for name, value in values.items():
            print(f"  {name}: {value}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "ratelimit.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
