"""The tool loop's own cost per step, and the python sandbox's start-up time.

A real gateway (`python -m app serve`) talks to the zero-delay fake upstream, which answers a
request offering tools with a `calculator` call until `steps=N` tool results are in the messages.
Requests with 0..K steps are sent round-robin (so machine noise hits every K alike); for each
K >= 1 the gateway's overhead per step is

    (median latency(K) - median latency(0)) / K - median tool run - median upstream round trip

where the tool run is what the gateway itself reports (`tools_used[].duration_ms`) and the
upstream round trip is the same tool-call answer fetched directly from the fake upstream by the
same client. The sandbox's start-up is the run time of `print(1)` through `POST /v1/tools/python`.

Run: python benchmarks/tool_steps.py [--rounds 300] [--max-steps 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from run import HEADERS, HERE, TARGET_CORE, Child, free_port, target_command, wait_ready

PYTHON_RUNS = 30


def _body(steps: int) -> dict[str, Any]:
    return {
        "model": "openai/bench-model",
        "messages": [{"role": "user", "content": f"steps={steps}"}],
    }


async def _timed_post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[float, Any]:
    started = time.perf_counter()
    async with session.post(url, json=body, headers=HEADERS) as resp:
        if body.get("stream"):
            data: Any = await resp.read()
        else:
            data = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data!r}"[:300])
    return (time.perf_counter() - started) * 1000, data


async def measure(gateway: str, upstream: str, rounds: int, max_steps: int) -> dict[str, Any]:
    chat = f"{gateway}/v1/chat/completions"
    direct_body = {**_body(1), "stream": True, "tools": [{"type": "function"}]}
    latency: dict[int, list[float]] = {k: [] for k in range(max_steps + 1)}
    tool_ms: list[float] = []
    direct_ms: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm-up: connections, caches, first-call imports
            await _timed_post(session, chat, _body(1))
        for _ in range(rounds):
            for steps in range(max_steps + 1):
                elapsed, data = await _timed_post(session, chat, _body(steps))
                latency[steps].append(elapsed)
                tool_ms += [t["duration_ms"] for t in data["tools_used"]]
            elapsed, _ = await _timed_post(session, f"{upstream}/v1/chat/completions", direct_body)
            direct_ms.append(elapsed)
        sandbox_ms = []
        for _ in range(PYTHON_RUNS):
            _, data = await _timed_post(session, f"{gateway}/v1/tools/python", {"code": "print(1)"})
            sandbox_ms.append(data["duration_ms"])
    base = statistics.median(latency[0])
    tool = statistics.median(tool_ms)
    direct = statistics.median(direct_ms)
    per_step = {
        k: round((statistics.median(latency[k]) - base) / k - tool - direct, 3)
        for k in range(1, max_steps + 1)
    }
    return {
        "median_latency_ms": {k: round(statistics.median(v), 3) for k, v in latency.items()},
        "median_tool_run_ms": round(tool, 3),
        "median_upstream_round_trip_ms": round(direct, 3),
        "overhead_per_step_ms": per_step,
        "sandbox_print_1_ms": {
            "median": round(statistics.median(sandbox_ms), 1),
            "min": round(min(sandbox_ms), 1),
            "max": round(max(sandbox_ms), 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--max-steps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        up_port, gw_port = free_port(), free_port()
        upstream_url = f"http://127.0.0.1:{up_port}"
        cmd, popen = target_command("direct", up_port, "", tmp)
        upstream = Child("upstream", cmd, tmp, core="1", **popen)
        cmd, popen = target_command("gateway", gw_port, upstream_url, tmp)
        popen["env"] |= {"ENABLED_TOOLS": "calculator,python", "MAX_TOOL_STEPS": "50"}
        gateway = Child("gateway", cmd, tmp, core=TARGET_CORE, **popen)
        try:
            error = wait_ready(gateway, gw_port, timeout=45.0)
            if error:
                print(f"gateway not ready: {error}\n{gateway.tail()}")
                return 1
            result = asyncio.run(
                measure(f"http://127.0.0.1:{gw_port}", upstream_url, args.rounds, args.max_steps)
            )
        finally:
            gateway.stop()
            upstream.stop()
    for key, value in result.items():
        print(f"{key}: {value}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "tool_steps.json").write_text(repr(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
