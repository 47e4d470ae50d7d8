"""The cost of the metrics on the passthrough: CPU time per request of two gateways in one
process, one with METRICS_ENABLED and one without, driven in turns through ASGI (no sockets on
the gateway's side, so that only the app's own work is timed) against the zero-delay fake
upstream.

    python benchmarks/metrics_overhead.py [--requests 2000] [--rounds 7]

Each round times a batch on each app, alternating which goes first; the figure is the median
over rounds of CPU microseconds per request, for plain and streamed chat completions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import uvloop
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.fakes.serve import free_port  # noqa: E402

KEY = "sk-bench-key"
_MESSAGE = {"role": "user", "content": "Say hello"}


def _body(stream: bool) -> bytes:
    body: dict[str, Any] = {"model": "openai/bench-model", "messages": [_MESSAGE], "max_tokens": 16}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return orjson.dumps(body)


async def _one(app: FastAPI, state: dict[str, Any], body: bytes) -> None:
    headers = [
        (b"host", b"gateway"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {KEY}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": dict(state),
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    assert status == 200, status


@asynccontextmanager
async def _opened(upstream: str, metrics: bool) -> AsyncIterator[tuple[FastAPI, dict[str, Any]]]:
    settings = load_settings(
        _env_file=None,
        openai_base_url=upstream,
        openai_api_key="k",
        ollama_base_url="",
        local_enabled=False,
        api_keys=[KEY],
        log_level="WARNING",
        data_dir=Path(tempfile.mkdtemp(prefix="metrics-bench-")),
        enabled_tools=[],
        persona_path=ROOT / "persona.json",
        metrics_enabled=metrics,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        yield app, dict(state or {})


async def _measure(upstream: str, requests: int, rounds: int) -> dict[str, dict[str, float]]:
    async with AsyncExitStack() as stack:
        apps = {
            "on": await stack.enter_async_context(_opened(upstream, True)),
            "off": await stack.enter_async_context(_opened(upstream, False)),
        }
        # as `python -m app serve` runs: startup's heap frozen, the collector's threshold raised
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        results: dict[str, dict[str, float]] = {}
        for stream in (False, True):
            body = _body(stream)
            times: dict[str, list[float]] = {"on": [], "off": []}
            for app, state in apps.values():  # warm both
                for _ in range(300):
                    await _one(app, state, body)
            for r in range(rounds):
                order = ("on", "off") if r % 2 == 0 else ("off", "on")
                for name in order:
                    app, state = apps[name]
                    started = time.process_time()
                    for _ in range(requests):
                        await _one(app, state, body)
                    times[name].append((time.process_time() - started) / requests * 1e6)
            on, off = statistics.median(times["on"]), statistics.median(times["off"])
            results["stream" if stream else "plain"] = {
                "on_us": round(on, 1),
                "off_us": round(off, 1),
                "cost_us": round(on - off, 1),
                "ratio": round(on / off, 3),
            }
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per batch")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks/fake_upstream.py"), "--port", str(port)]
    )
    try:
        time.sleep(1.0)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        results = uvloop.run(_measure(f"http://127.0.0.1:{port}/v1", args.requests, args.rounds))
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    for kind, figures in results.items():
        print(
            f"{kind:6} metrics on {figures['on_us']:7.1f} µs/request, off {figures['off_us']:7.1f}"
            f" µs/request: cost {figures['cost_us']:+.1f} µs ({figures['ratio']:.3f}x)"
        )
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    main()
