"""What a pipeline step costs, in process and over each broker, and what a second worker adds.

Real processes on 127.0.0.1: the zero-delay fake upstream, a redis-server (the gateways' and
workers' REDIS_URL, and the Redis Streams broker), a nats-server with JetStream, and three
gateways (`python -m app serve`) with the same PIPELINES_FILE:

    in-process   no BROKER_URL: every step runs in the gateway
    redis        BROKER_URL=redis://…, one `python -m app worker`
    nats         BROKER_URL=nats://…, one `python -m app worker`

`chain1` is one agent step; `chain5` is five, each after the one before. The last step of a
pipeline always runs in the gateway (it streams the answer), so steps 1-4 of chain5 go over the
broker. `/pipelines/{id}/execute` for no user also asks the answering model for follow-ups: one
model call more in both chains, which the difference cancels.

1. Latency, one request at a time: per round, per configuration, a block of M requests each of
   `model` (a plain non-stream `/v1/chat/completions` to openai/bench-model, the reference for
   one model call through the gateway), `chain1` and `chain5` (`/pipelines/chainN/execute`,
   non-stream). Many short rounds, the configurations alternating (reversed every other round),
   so that a busy spell of the shared machine hits every configuration alike. Overhead per
   step = (median(chain5) - median(chain1)) / 4, over every request of the rounds. Pinned as
   run.py pins: the code under test (gateways and workers) on core 0; the upstream,
   redis-server, nats-server and this client on core 1. Sequential requests never run the
   gateway and its worker at the same time, so they share core 0.
2. Throughput: chain5 with C requests in flight for D seconds, in process, and over each broker
   with 1 and 2 workers (the second started for its block and stopped after), alternating by
   round. Nothing is pinned in this phase: pinning the workers beside the gateway would keep a
   second worker from helping by construction; the CPU columns show where the cores went, the
   machine's own busy time included (others' processes too, on a shared machine).

Prints markdown tables and writes results/pipeline_overhead.json. Every process is stopped by its
PID, also on Ctrl-C or SIGTERM.

Run: python benchmarks/pipeline_overhead.py [--latency-rounds 12] [--requests 10]
    [--rounds 3] [--duration 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import orjson
from run import (
    BODY,
    CLK_TCK,
    HEADERS,
    HERE,
    LOAD_CORE,
    ROOT,
    TARGET_CORE,
    Child,
    free_port,
    pct,
    target_command,
    upstream_command,
    wait_ready,
)

sys.path.insert(0, str(ROOT))
from app.state.redis import redis_server_binary

PIPELINES = """pipelines:
  - id: chain1
    description: One agent step, which answers
    steps:
      - name: answer
        prompt: Answer the user briefly.
        max_tokens: 16
  - id: chain5
    description: Five agent steps, each after the one before; the last answers
    steps:
      - name: s1
        prompt: Restate the user's request.
        max_tokens: 16
      - name: s2
        prompt: List what the answer needs.
        max_tokens: 16
        after: [s1]
      - name: s3
        prompt: Draft the answer.
        max_tokens: 16
        after: [s2]
      - name: s4
        prompt: Check the draft.
        max_tokens: 16
        after: [s3]
      - name: answer
        prompt: Answer the user briefly.
        max_tokens: 16
        after: [s4]
"""
CONFIGS = ("in-process", "redis", "nats")
PATHS = ("model", "chain1", "chain5")
INPUT = {"input": "Say hello"}
ROLES = ("gateway", "workers", "redis-server", "nats-server", "upstream")
WARMUP = 10
Result = dict[str, Any]


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` on `cpus` (a process's affinity is per thread)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def cpu_seconds(child: Child) -> float:
    """The CPU time of `child`'s threads, to the nanosecond (/proc/<pid>/stat counts in ticks
    of 10 ms, too coarse for a block of short requests); 0.0 once it has exited."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for tid in os.listdir(f"/proc/{child.proc.pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                path = f"/proc/{child.proc.pid}/task/{tid}/schedstat"
                total += int(Path(path).read_text().split()[0])
    return total / 1e9


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy, over all cores (/proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / CLK_TCK


def wait_port(child: Child, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if not child.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not start:\n{child.tail()}") from None
            time.sleep(0.05)


def wait_worker(child: Child, timeout: float = 90.0) -> None:
    """Until the worker logs that it is consuming."""
    deadline = time.monotonic() + timeout
    while "worker consuming" not in child.tail(200):
        if not child.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not start:\n{child.tail()}")
        time.sleep(0.1)


@dataclass
class Gateway:
    """One configuration: its gateway, its workers, and how to start another worker."""

    name: str
    port: int
    child: Child
    env: dict[str, str]
    logs: Path
    workers: list[Child] = field(default_factory=list)

    def url(self, path: str) -> str:
        if path == "model":
            return f"http://127.0.0.1:{self.port}/v1/chat/completions"
        return f"http://127.0.0.1:{self.port}/pipelines/{path}/execute"

    def add_worker(self, core: str) -> Child:
        env = self.env | {"LOG_LEVEL": "INFO"}  # the line that says it is ready
        cmd = [sys.executable, "-u", "-m", "app", "worker"]
        name = f"{self.name}-worker-{len(self.workers) + 1}-{time.monotonic_ns()}"
        worker = Child(name, cmd, self.logs, core=core, env=env, cwd=self.logs)
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: Child) -> None:
        worker.stop()
        self.workers.remove(worker)


class Cpu:
    """CPU seconds of each role's processes, between two readings."""

    def __init__(self, gateway: Gateway, shared: dict[str, Child]) -> None:
        self._gateway, self._shared = gateway, shared
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        read = {
            "gateway": cpu_seconds(self._gateway.child),
            "workers": sum(cpu_seconds(w) for w in self._gateway.workers),
            "client": time.process_time(),
            "machine": machine_busy(),
        }
        return read | {name: cpu_seconds(child) for name, child in self._shared.items()}

    def spent(self) -> dict[str, float]:
        end = self._read()
        return {role: end[role] - self._start[role] for role in end}


class Failed(RuntimeError):
    pass


async def ask(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[float, Result]:
    """Milliseconds to the whole answer, and the answer."""
    started = time.perf_counter()
    async with session.post(url, json=body, headers=HEADERS) as resp:
        data = await resp.read()
    elapsed = (time.perf_counter() - started) * 1000
    if resp.status != 200:
        raise Failed(f"{url}: HTTP {resp.status}: {data[:300]!r}")
    answer: Result = orjson.loads(data)
    return elapsed, answer


def body_for(path: str) -> dict[str, Any]:
    return BODY if path == "model" else INPUT


async def check(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    """Each pipeline answers with its steps, also as the model pipeline/<id>; then warm up."""
    for path, steps in (("chain1", 1), ("chain5", 5)):
        _, answer = await ask(session, gateway.url(path), INPUT)
        names = [agent["name"] for agent in answer.get("agents", [])]
        if len(names) != steps or not answer.get("answer"):
            raise Failed(f"{gateway.name} {path}: steps {names}, answer {answer.get('answer')!r}")
        chat = {**BODY, "model": f"pipeline/{path}"}
        _, answer = await ask(session, gateway.url("model"), chat)
        if not answer["choices"][0]["message"]["content"]:
            raise Failed(f"{gateway.name} pipeline/{path} as a model: no answer")
    for path in PATHS:
        for _ in range(WARMUP):
            await ask(session, gateway.url(path), body_for(path))


async def latency_block(
    session: aiohttp.ClientSession,
    gateway: Gateway,
    path: str,
    count: int,
    shared: dict[str, Child],
    into: Result,
) -> None:
    """`count` requests one at a time: their times, the steps' own durations, and the CPU."""
    cpu = Cpu(gateway, shared)
    for _ in range(count):
        elapsed, answer = await ask(session, gateway.url(path), body_for(path))
        into["ms"].append(elapsed)
        for agent in answer.get("agents", []):
            key = "answer_step_ms" if agent["name"] == "answer" else "step_ms"
            into[key].append(agent["duration_ms"])
    spent = cpu.spent()
    del spent["machine"]
    for role, seconds in spent.items():
        into["cpu_us"].setdefault(role, []).append(seconds * 1e6 / count)


async def load(
    session: aiohttp.ClientSession, url: str, concurrency: int, seconds: float
) -> Result:
    """chain5 with `concurrency` requests in flight until `seconds` have passed."""
    end = time.perf_counter() + seconds
    times: list[float] = []
    errors: list[str] = []

    async def client() -> None:
        while time.perf_counter() < end:
            try:
                elapsed, _ = await ask(session, url, INPUT)
                times.append(elapsed)
            except (Failed, aiohttp.ClientError, TimeoutError) as exc:
                errors.append(str(exc)[:300])

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "requests": len(times),
        "wall_s": wall,
        "rps": len(times) / wall,
        "p50_ms": statistics.median(times) if times else None,
        "p95_ms": pct(times, 95) if times else None,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def throughput_block(
    session: aiohttp.ClientSession,
    gateway: Gateway,
    args: argparse.Namespace,
    shared: dict[str, Child],
) -> Result:
    url = gateway.url("chain5")
    await load(session, url, args.concurrency, args.warmup)
    cpu = Cpu(gateway, shared)
    point = await load(session, url, args.concurrency, args.duration)
    spent = cpu.spent()
    machine = spent.pop("machine")
    point["cpu_pct"] = {role: s / point["wall_s"] * 100 for role, s in spent.items()}
    point["machine_pct"] = machine / point["wall_s"] * 100
    if point["requests"]:
        app = spent["gateway"] + spent["workers"]
        point["app_cpu_us"] = app * 1e6 / point["requests"]
        point["total_cpu_us"] = sum(spent.values()) * 1e6 / point["requests"]
    return point


async def latency_phase(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    gateways: dict[str, Gateway],
    shared: dict[str, Child],
    latency: Result,
) -> None:
    for rnd in range(args.latency_rounds):
        configs = CONFIGS if rnd % 2 == 0 else CONFIGS[::-1]
        paths = PATHS if rnd % 2 == 0 else PATHS[::-1]
        for name in configs:
            for path in paths:
                empty: Result = {"ms": [], "step_ms": [], "answer_step_ms": []}
                into = latency[name].setdefault(path, empty | {"cpu_us": {}})
                await latency_block(session, gateways[name], path, args.requests, shared, into)
        if (rnd + 1) % 4 == 0 or rnd + 1 == args.latency_rounds:
            print(f"  latency round {rnd + 1}/{args.latency_rounds} done", flush=True)


async def throughput_phase(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    gateways: dict[str, Gateway],
    shared: dict[str, Child],
    cpus: str,
    throughput: Result,
) -> None:
    blocks = [("in-process", 0), ("redis", 1), ("redis", 2), ("nats", 1), ("nats", 2)]
    for rnd in range(args.rounds):
        for name, count in blocks if rnd % 2 == 0 else blocks[::-1]:
            gateway = gateways[name]
            extra = None
            if count == 2:
                extra = gateway.add_worker(cpus)
                wait_worker(extra)
            try:
                point = await throughput_block(session, gateway, args, shared)
            finally:
                if extra is not None:
                    gateway.stop_worker(extra)
            key = name if count == 0 else f"{name}, {count} worker{'s' * (count > 1)}"
            throughput.setdefault(key, []).append(point)
            print(f"  {key}: {point['rps']:.1f} req/s, {point['errors']} errors", flush=True)


async def measure(
    args: argparse.Namespace,
    gateways: dict[str, Gateway],
    shared: dict[str, Child],
    everyone: set[int],
    results: Result,
) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for gateway in gateways.values():
            await check(session, gateway)
        await latency_phase(session, args, gateways, shared, results["latency"])
        processes = [*shared.values()]
        for gateway in gateways.values():
            processes += [gateway.child, *gateway.workers]
        for child in processes:  # the throughput phase: nothing pinned
            pin(child.proc.pid, everyone)
        pin(os.getpid(), everyone)
        cpus = ",".join(map(str, sorted(everyone)))
        await throughput_phase(session, args, gateways, shared, cpus, results["throughput"])


def start(
    args: argparse.Namespace, tmp: Path, children: list[Child], gateways: dict[str, Gateway]
) -> dict[str, Child]:
    """The upstream and the brokers, by name; the gateways with one worker per broker in
    `gateways`; all ready. What it starts is in `children` and `gateways` at once, to stop."""
    up_port, redis_port, nats_port = free_port(), free_port(), free_port()
    upstream = Child("upstream", upstream_command(up_port, 3), tmp, core=LOAD_CORE)
    children.append(upstream)
    redis_cmd = [redis_server_binary(), "--port", str(redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"]  # fmt: skip
    redis = Child("redis-server", redis_cmd, tmp, core=LOAD_CORE)
    children.append(redis)
    nats_bin = shutil.which("nats-server")
    if nats_bin is None:
        raise RuntimeError("nats-server is missing: run scripts/install-test-tools")
    (tmp / "jetstream").mkdir()
    nats_cmd = [
        nats_bin,
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        str(nats_port),
        "-sd",
        str(tmp / "jetstream"),
    ]
    nats = Child("nats-server", nats_cmd, tmp, core=LOAD_CORE)
    children.append(nats)
    if error := wait_ready(upstream, up_port, timeout=15.0):
        raise RuntimeError(f"fake upstream: {error}\n{upstream.tail()}")
    wait_port(redis, redis_port)
    wait_port(nats, nats_port)

    pipelines = tmp / "pipelines.yaml"
    pipelines.write_text(PIPELINES)
    brokers = {
        "in-process": "",
        "redis": f"redis://127.0.0.1:{redis_port}",
        "nats": f"nats://127.0.0.1:{nats_port}",
    }
    for name, broker in brokers.items():
        logs, port = tmp / name, free_port()
        logs.mkdir()
        upstream_url = f"http://127.0.0.1:{up_port}"
        cmd, popen = target_command("gateway", port, upstream_url, logs, args)
        popen["env"] |= {
            "PIPELINES_FILE": str(pipelines),
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}",
            "RAG_ENABLED": "false",
            "MEMORY_ENABLED": "false",
            "BROKER_URL": broker,
            "BROKER_PREFIX": f"bench-{name}",
        }
        child = Child(f"{name}-gateway", cmd, logs, core=TARGET_CORE, **popen)
        children.append(child)
        gateways[name] = Gateway(name, port, child, popen["env"], logs)
        if broker:
            gateways[name].add_worker(TARGET_CORE)
    for gateway in gateways.values():
        if error := wait_ready(gateway.child, gateway.port, timeout=90.0):
            raise RuntimeError(f"{gateway.name} gateway: {error}\n{gateway.child.tail()}")
        for worker in gateway.workers:
            wait_worker(worker)
    return {"redis-server": redis, "nats-server": nats, "upstream": upstream}


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _per_step(paths: Result, half: int) -> float:
    """The overhead per step from the first (0) or the second (1) half of the rounds: how
    steady the figure is."""
    chains: list[float] = []
    for path in ("chain1", "chain5"):
        ms: list[float] = paths[path]["ms"]
        middle = len(ms) // 2
        chains.append(statistics.median(ms[middle:] if half else ms[:middle]))
    return (chains[1] - chains[0]) / 4


def summarise(results: Result) -> Result:
    """Medians over every request (latency) and over the rounds (throughput)."""
    summary: Result = {"latency": {}, "throughput": {}}
    for name, paths in results["latency"].items():
        if not all(path in paths and paths[path]["ms"] for path in PATHS):
            continue
        figures: Result = {
            path: {
                "requests": len(paths[path]["ms"]),
                "p50_ms": statistics.median(paths[path]["ms"]),
                "p95_ms": pct(paths[path]["ms"], 95),
                "cpu_us": {role: med(v) for role, v in paths[path]["cpu_us"].items()},
            }
            for path in PATHS
        }
        per_step = (figures["chain5"]["p50_ms"] - figures["chain1"]["p50_ms"]) / 4
        step_ms = med(paths["chain5"]["step_ms"])
        figures |= {
            "per_step_ms": per_step,
            "per_step_ms_halves": [_per_step(paths, half) for half in (0, 1)],
            "per_step_over_model_ms": per_step - figures["model"]["p50_ms"],
            "step_duration_ms": step_ms,
            "answer_step_ms": med(paths["chain5"]["answer_step_ms"]),
            "per_step_outside_step_ms": None if step_ms is None else per_step - step_ms,
        }
        summary["latency"][name] = figures
    for key, points in results["throughput"].items():
        summary["throughput"][key] = {
            "rounds": len(points),
            "rps": statistics.median(p["rps"] for p in points),
            "rps_rounds": [round(p["rps"], 1) for p in points],
            "machine_pct": statistics.median(p["machine_pct"] for p in points),
            "p50_ms": med([p["p50_ms"] for p in points if p["p50_ms"] is not None]),
            "errors": sum(p["errors"] for p in points),
            "cpu_pct": {
                role: statistics.median(p["cpu_pct"][role] for p in points)
                for role in points[0]["cpu_pct"]
            },
            "app_cpu_us": med([p["app_cpu_us"] for p in points if "app_cpu_us" in p]),
            "total_cpu_us": med([p["total_cpu_us"] for p in points if "total_cpu_us" in p]),
        }
    return summary


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def tables(summary: Result, args: argparse.Namespace) -> str:
    n = args.latency_rounds * args.requests
    out = [
        f"Latency, one request at a time, {n} per path and configuration (median ms; "
        "`model`: /v1/chat/completions to openai/bench-model; steps s1-s4 of chain5 over the "
        "broker, the answer step in the gateway):",
        "",
        "| configuration | model p50 | chain1 p50 | chain5 p50 | chain5 p95 | per step "
        "| per step - model | step duration_ms (s1-s4) | per step - duration_ms "
        "| answer step duration_ms | per step, 1st and 2nd half |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, f in summary["latency"].items():
        out.append(
            f"| {name} | {f['model']['p50_ms']:.2f} | {f['chain1']['p50_ms']:.2f} "
            f"| {f['chain5']['p50_ms']:.2f} | {f['chain5']['p95_ms']:.2f} "
            f"| {f['per_step_ms']:.2f} | {f['per_step_over_model_ms']:+.2f} "
            f"| {fmt(f['step_duration_ms'])} | {fmt(f['per_step_outside_step_ms'], '+.2f')} "
            f"| {fmt(f['answer_step_ms'])} "
            f"| {', '.join(format(x, '.2f') for x in f['per_step_ms_halves'])} |"
        )
    out += [
        "",
        "CPU per request in the latency blocks (µs; median over the blocks; gateway and "
        "workers on core 0, the rest on core 1):",
        "",
        "| configuration | path | gateway | workers | redis-server | nats-server | upstream "
        "| client |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in summary["latency"].items():
        for path in PATHS:
            cpu = f[path]["cpu_us"]
            cells = " | ".join(fmt(cpu.get(role), ".0f") for role in (*ROLES, "client"))
            out.append(f"| {name} | {path} | {cells} |")
    out += [
        "",
        f"Throughput of chain5, {args.concurrency} requests in flight, {args.duration} s per "
        f"block, median of {args.rounds} rounds; nothing pinned (CPU %: 100 = one core, "
        f"{os.cpu_count()} cores; machine: every process's, ours and others'):",
        "",
        "| configuration | req/s | req/s by round | p50 ms | errors | gateway CPU % "
        "| workers CPU % | redis-server % | nats-server % | upstream % | client % | ours % "
        "| machine % | gateway+workers CPU µs/req | ours CPU µs/req |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, t in summary["throughput"].items():
        cpu = t["cpu_pct"]
        cells = " | ".join(fmt(cpu.get(role), ".0f") for role in (*ROLES, "client"))
        out.append(
            f"| {key} | {t['rps']:.1f} | {', '.join(map(str, t['rps_rounds']))} "
            f"| {fmt(t['p50_ms'])} | {t['errors']} | {cells} | {sum(cpu.values()):.0f} "
            f"| {t['machine_pct']:.0f} "
            f"| {fmt(t['app_cpu_us'], '.0f')} | {fmt(t['total_cpu_us'], '.0f')} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-rounds", type=int, default=12, help="rounds of phase 1")
    parser.add_argument(
        "--requests", type=int, default=10, help="sequential requests per path, config and round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of phase 2 (throughput)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load block")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each block")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "pipeline_overhead.json")
    args = parser.parse_args()
    if not shutil.which("taskset"):
        parser.error("missing taskset (util-linux)")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    everyone = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # the client, before it starts any thread
    results: Result = {
        "meta": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "pinning": {
                "latency": f"gateways and workers on core {TARGET_CORE}; upstream, redis-server, "
                f"nats-server and the client on core {LOAD_CORE}",
                "throughput": "none",
            },
        },
        "latency": {name: {} for name in CONFIGS},
        "throughput": {},
    }
    children: list[Child] = []
    status = 0
    with tempfile.TemporaryDirectory(prefix="ai-gateway-pipebench-") as scratch:
        tmp = Path(scratch)
        gateways: dict[str, Gateway] = {}
        try:
            shared = start(args, tmp, children, gateways)
            print("all up; measuring", flush=True)
            asyncio.run(measure(args, gateways, shared, everyone, results))
        except KeyboardInterrupt:
            print("interrupted; stopping children", file=sys.stderr)
            results["meta"]["interrupted"] = True
            status = 1
        except (RuntimeError, OSError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            for gateway in gateways.values():
                print(f"--- {gateway.name} gateway log:\n{gateway.child.tail()}", file=sys.stderr)
            results["meta"]["error"] = str(exc)
            status = 1
        finally:
            for gateway in gateways.values():
                for worker in list(gateway.workers):
                    gateway.stop_worker(worker)
            for child in reversed(children):
                child.stop()
    results["meta"]["loadavg_end"] = os.getloadavg()
    results["summary"] = summarise(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print("\n" + tables(results["summary"], args) + f"\n\nwrote {args.output}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
