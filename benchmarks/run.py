"""Benchmark orchestrator: gateway vs. the Python floor, all on 127.0.0.1.

Starts the fake upstream on core 1, then for each target (`direct` = a second fake upstream,
`ref-aiohttp`, `ref-httpx`, `gateway`) starts it on core 0, waits until it answers, warms up,
runs `wrk` on core 1 at each concurrency for a non-stream chat request, measures streaming
time-to-first-chunk with a sequential aiohttp driver on core 1, then stops it. Prints markdown
tables and writes benchmarks/results/latest.json. Every child is stopped on exit, even on Ctrl-C.

Run: python benchmarks/run.py --duration 10
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "latest.json"
PATH = "/v1/chat/completions"
BODY: dict[str, Any] = {
    "model": "openai/bench-model",
    "messages": [{"role": "user", "content": "Say hello"}],
    "max_tokens": 16,
}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
KEY = "sk-bench-key"  # LiteLLM insists on the sk- prefix for its master key
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
TARGETS = ("direct", "ref-aiohttp", "ref-httpx", "gateway", "gateway-tools", "litellm", "baseline")
DEFAULT_TARGETS = TARGETS[:5]  # litellm runs when --litellm names it, baseline with --baseline
TARGET_CORE, LOAD_CORE = "0", "1"  # target alone on core 0; upstream, wrk and driver on core 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
Result = dict[str, Any]


class Child:
    """A process we started, in its own session (so Ctrl-C reaches only us), stopped by PID."""

    def __init__(self, name: str, cmd: list[str], logs: Path, **popen: Any) -> None:
        self.name, self.log = name, logs / f"{name}.log"
        self._out: IO[bytes] = self.log.open("wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", popen.pop("core"), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def tail(self, lines: int = 25) -> str:
        self._out.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.alive():
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)  # the group our child leads (pgid == its pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace)
                    break
        self._out.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(port: int, body: dict[str, Any], timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", PATH, body=json.dumps(body), headers=HEADERS)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(child: Child, port: int, timeout: float) -> str | None:
    """None once a non-stream and a stream request both succeed, else why not."""
    deadline, answered, last = time.monotonic() + timeout, 0.0, "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            return f"exited with code {child.proc.returncode}"
        try:
            status, data = post(port, BODY)
            if status == 200 and b'"choices"' in data:
                status, data = post(port, STREAM_BODY)
                if status == 200 and b"data: [DONE]" in data:
                    return None
                return f"stream check failed: HTTP {status}: {data[:300]!r}"
            last = f"HTTP {status}: {data[:300]!r}"
            answered = answered or time.monotonic()
            if time.monotonic() - answered > 5:  # up, but keeps refusing
                return f"answers, but not with a chat completion: {last}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.1)
    return f"not ready after {timeout:.0f}s (last: {last})"


def write_lua(path: Path) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{json.dumps(BODY)}]==]"]
    lines += [f'wrk.headers["{key}"] = "{value}"' for key, value in HEADERS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(out: str) -> Result:
    def latency(pct: int) -> float | None:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
        return round(float(m[1]) * UNITS_MS[m[2]], 3) if m else None

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps[1]) if rps else None,
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "requests": int(total[1]) if total else None,
        "non_2xx": int(non2xx[1]) if non2xx else 0,
        "socket_errors": sum(map(int, sock.groups())) if sock else 0,
    }


def run_wrk(url: str, script: Path, conc: int, duration: int) -> Result:
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{conc}", f"-d{duration}s", "--latency"]
    cmd += ["--timeout", "5s", "-s", str(script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=False)
    if proc.returncode != 0 or "Requests/sec" not in proc.stdout:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    return parse_wrk(proc.stdout)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def has_content(line: bytes) -> bool:
    """Whether an SSE `data:` line is a chunk whose delta carries non-empty content."""
    import orjson

    try:
        chunk = orjson.loads(line[5:])
    except orjson.JSONDecodeError:
        return False
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    return bool(choices) and bool((choices[0].get("delta") or {}).get("content"))


async def ttfc_driver(url: str, n: int, warmup: int = 20) -> Result:
    """N sequential stream requests on one keep-alive connection: request send -> first `data:`
    line (TTFC), -> first chunk with non-empty `delta.content` (TTFT) and -> end of stream, in
    ms."""
    import aiohttp

    body = json.dumps(STREAM_BODY).encode()
    ttfc: list[float] = []
    ttft: list[float] = []
    full: list[float] = []
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for i in range(warmup + n):
            t0, first, content, done = time.perf_counter(), 0.0, 0.0, False
            async with session.post(url, data=body, headers=HEADERS) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    now = time.perf_counter()
                    first = first or now
                    if line.startswith(b"data: [DONE]"):
                        done = True
                    elif not content and has_content(line):
                        content = now
            end = time.perf_counter()
            if not (first and content and done):
                raise RuntimeError("stream without a content chunk or without `data: [DONE]`")
            if i >= warmup:
                ttfc.append((first - t0) * 1e3)
                ttft.append((content - t0) * 1e3)
                full.append((end - t0) * 1e3)
    return {
        "requests": n,
        "ttfc_p50_ms": round(statistics.median(ttfc), 3),
        "ttfc_p99_ms": round(pct(ttfc, 99), 3),
        "ttft_p50_ms": round(statistics.median(ttft), 3),
        "ttft_p90_ms": round(pct(ttft, 90), 3),
        "stream_p50_ms": round(statistics.median(full), 3),
    }


RT_PRIORITY = "50"


def set_fifo(pids: list[int], on: bool) -> None:
    """SCHED_FIFO (or back to SCHED_OTHER) for every thread of `pids`."""
    for pid in pids:
        policy = ["-f", "-p", RT_PRIORITY] if on else ["-o", "-p", "0"]
        subprocess.run(["chrt", "-a", *policy, str(pid)], check=True, capture_output=True)


def run_ttfc(url: str, n: int, fifo: bool = False) -> Result:
    cmd = ["taskset", "-c", LOAD_CORE, sys.executable, __file__, "--ttfc-driver", url]
    if fifo:
        cmd = ["chrt", "-f", RT_PRIORITY, *cmd]
    proc = subprocess.run(
        [*cmd, "--ttfc-requests", str(n)],
        capture_output=True,
        text=True,
        timeout=60 + n * 0.5,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"TTFC driver failed: {proc.stderr.strip()[-500:]}")
    return dict(json.loads(proc.stdout))


LITELLM_CONFIG = """model_list:
  - model_name: openai/bench-model
    litellm_params:
      model: openai/bench-model
      api_base: {upstream}/v1
      api_key: bench-upstream-key
general_settings:
  master_key: {key}
litellm_settings:
  telemetry: false
"""


def upstream_command(port: int, chunks: int) -> list[str]:
    """The fake upstream on `port`, streaming `chunks` content chunks."""
    script = str(HERE / "fake_upstream.py")
    return [sys.executable, "-u", script, "--port", str(port), "--chunks", str(chunks)]


DEFAULT_ARGS = argparse.Namespace(chunks=20, baseline=None, litellm=None)
"""What the other benchmarks start their targets with (run.py's own defaults)."""


def target_command(
    name: str, port: int, upstream: str, tmp: Path, args: argparse.Namespace = DEFAULT_ARGS
) -> tuple[list[str], Any]:
    py = [sys.executable, "-u"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if name == "direct":
        return upstream_command(port, args.chunks), {"env": env}
    if name.startswith("ref-"):
        cmd = [*py, str(HERE / "reference_proxy.py"), "--port", str(port), "--upstream", upstream]
        return [*cmd, "--client", name.removeprefix("ref-")], {"env": env}
    if name.startswith("gateway") or name == "baseline":  # in a scratch dir: no .env, no data/
        # baseline: the plain passthrough from another checkout (--baseline), e.g. the commit
        # before a change, so that the two alternate in one run
        root = args.baseline if name == "baseline" else ROOT
        if (root / "persona.json").is_file():  # the repo's persona, as a real deployment has
            env["PERSONA_PATH"] = str(root / "persona.json")
        env |= {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "OPENAI_BASE_URL": f"{upstream}/v1",
            "OPENAI_API_KEY": "bench-upstream-key",
            "OLLAMA_BASE_URL": "",
            "LOCAL_ENABLED": "false",
            "API_KEYS": KEY,
            "LOG_LEVEL": "WARNING",
            "DEFAULT_MODEL": "openai/bench-model",
            "DATA_DIR": str(tmp / "gateway-data"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
            # gateway: the plain passthrough; gateway-tools: the default tools offered each time
            "ENABLED_TOOLS": "" if name == "gateway-tools" else "none",
            # the steady state: the router's classifier is not trained beside the measurement
            "INTENT_WARMUP": "false",
        }
        return [*py, "-m", "app", "serve"], {"env": env, "cwd": tmp}
    if name == "litellm" and args.litellm:  # LiteLLM's proxy, one worker, its model map offline
        litellm: str = args.litellm
        config = tmp / "litellm.yaml"
        config.write_text(LITELLM_CONFIG.format(upstream=upstream, key=KEY))
        env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
        cmd = [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        return [*cmd, "--num_workers", "1"], {"env": env, "cwd": tmp}
    raise ValueError(f"unknown target {name!r}")


def bench_target(
    name: str, args: argparse.Namespace, upstream: Child, up_port: int, tmp: Path, result: Result
) -> None:
    """Fill `result` as it goes, so an interrupted run keeps the points already taken."""
    port = free_port()
    cmd, popen = target_command(name, port, f"http://127.0.0.1:{up_port}", tmp, args)
    child = Child(name, cmd, tmp, core=TARGET_CORE, **popen)
    result |= {"status": "running", "port": port, "points": [], "ttfc": None}
    try:
        error = wait_ready(child, port, timeout=120.0 if name == "litellm" else 45.0)
        if error:
            raise RuntimeError(error)
        url = f"http://127.0.0.1:{port}{PATH}"
        script = write_lua(tmp / f"{name}.lua")
        run_wrk(url, script, max(args.concurrency), min(3, args.duration))  # warm-up
        for conc in args.concurrency:
            cpu0, up0, t0 = child.cpu_seconds(), upstream.cpu_seconds(), time.monotonic()
            point = {"concurrency": conc, **run_wrk(url, script, conc, args.duration)}
            wall = time.monotonic() - t0
            point["target_cpu_pct"] = round((child.cpu_seconds() - cpu0) / wall * 100, 1)
            point["upstream_cpu_pct"] = round((upstream.cpu_seconds() - up0) / wall * 100, 1)
            if point["rps"]:  # CPU per request: what a share of a busy core cannot hide
                point["target_cpu_us"] = round(point["target_cpu_pct"] * 1e4 / point["rps"], 1)
            result["points"].append(point)
            print(f"  {name} c={conc}: {point['rps']} req/s, p99 {point['p99_ms']} ms", flush=True)
            if not child.alive():
                raise RuntimeError(f"{name} died during the run")
        if name in args.ttfc_targets and args.ttfc_requests > 0:
            pids = [child.proc.pid, upstream.proc.pid]
            if args.rt_stream:  # the target and the upstream preempt other work while measured
                set_fifo(pids, on=True)
            try:
                result["ttfc"] = run_ttfc(url, args.ttfc_requests, fifo=args.rt_stream)
            finally:
                if args.rt_stream:
                    set_fifo([pid for pid in pids if Path(f"/proc/{pid}").exists()], on=False)
            print(f"  {name} TTFC: {result['ttfc']}", flush=True)
        result["status"] = "ok"
    except (RuntimeError, OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        result |= {"status": "failed", "error": str(exc), "log_tail": child.tail()}
    except KeyboardInterrupt:
        result["status"] = "interrupted"
        raise
    finally:
        child.stop()


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def median_of(results: list[Result]) -> Result:
    """One target's rounds as one result: the median of each figure over the rounds that
    finished (errors are added up)."""
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return results[-1]

    def med(values: list[Any]) -> float | None:
        numbers = [v for v in values if v is not None and not math.isnan(v)]
        return round(statistics.median(numbers), 3) if numbers else None

    points = []
    for point in ok[0]["points"]:
        conc = point["concurrency"]
        same = [q for r in ok for q in r["points"] if q["concurrency"] == conc]
        merged: Result = {"concurrency": conc}
        for key in ("rps", "p50_ms", "p99_ms", "target_cpu_pct", "upstream_cpu_pct"):
            merged[key] = med([q[key] for q in same])
        merged["target_cpu_us"] = med([q.get("target_cpu_us") for q in same])
        for key in ("non_2xx", "socket_errors"):
            merged[key] = sum(q[key] for q in same)
        points.append(merged)
    ttfcs = [r["ttfc"] for r in ok if r.get("ttfc")]
    ttfc = {k: med([t[k] for t in ttfcs]) for k in ttfcs[0]} if ttfcs else None
    failed = len(results) - len(ok)
    return {
        "status": "ok",
        "rounds": len(ok),
        "failed_rounds": failed,
        "points": points,
        "ttfc": ttfc,
    }


def table(results: Result) -> str:
    out = [
        "| target | conc | req/s | p50 ms | p99 ms | errors | target CPU % | target CPU µs/req "
        "| upstream CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ttfc = [
        "| target | stream reqs | TTFC p50 ms | TTFC p99 ms | TTFT p50 ms | TTFT p90 ms "
        "| TTFT p50 over direct ms | full stream p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    direct = (results["targets"].get("direct") or {}).get("ttfc") or {}
    for name, res in results["targets"].items():
        if res["status"] == "failed":
            out.append(f"| {name} | FAILED: {res.get('error', '?')[:150]} ||||||||")
        elif res["status"] != "ok":
            out.append(f"| {name} | {res['status'].upper()} ||||||||")
        for p in res["points"]:
            errors = p["non_2xx"] + p["socket_errors"]
            up = "-" if name == "direct" else fmt(p["upstream_cpu_pct"], ".0f")
            out.append(
                f"| {name} | {p['concurrency']} | {fmt(p['rps'], '.0f')} | {fmt(p['p50_ms'])} "
                f"| {fmt(p['p99_ms'])} | {errors} | {fmt(p['target_cpu_pct'], '.0f')} "
                f"| {fmt(p.get('target_cpu_us'), '.0f')} | {up} |"
            )
        if t := res.get("ttfc"):
            over = t["ttft_p50_ms"] - direct["ttft_p50_ms"] if direct else None
            ttfc.append(
                f"| {name} | {t['requests']:.0f} | {fmt(t['ttfc_p50_ms'], '.3f')} "
                f"| {fmt(t['ttfc_p99_ms'], '.3f')} | {fmt(t['ttft_p50_ms'], '.3f')} "
                f"| {fmt(t['ttft_p90_ms'], '.3f')} | {fmt(over, '+.3f')} "
                f"| {fmt(t['stream_p50_ms'], '.3f')} |"
            )
    return "\n".join(out) + ("\n\n" + "\n".join(ttfc) if len(ttfc) > 2 else "")


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk point")
    parser.add_argument("--targets", help=f"comma list of {', '.join(TARGETS)}")
    parser.add_argument("--litellm", metavar="PATH", help="LiteLLM's `litellm` executable")
    parser.add_argument("--concurrency", default="1,8,32", help="comma list of wrk connections")
    parser.add_argument("--ttfc-requests", type=int, default=300)
    parser.add_argument(
        "--ttfc-targets", default="direct,ref-aiohttp,gateway,gateway-tools,baseline"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--chunks", type=int, default=20, help="content chunks in each fake upstream stream"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another checkout of the repo: adds the `baseline` target, the plain passthrough "
        "run from DIR (e.g. a `git worktree` of the commit before a change)",
    )
    parser.add_argument(
        "--rt-stream",
        action="store_true",
        help="run the stream phase with the target, the upstream and the driver under "
        "SCHED_FIFO (root): on a shared machine, other work then stays out of TTFC and TTFT",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run all targets this many times, alternating; "
        "the tables give the median of each figure over the rounds",
    )
    parser.add_argument("--ttfc-driver", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ttfc_driver:  # internal: the TTFC client, run pinned by the orchestrator
        import uvloop

        print(json.dumps(uvloop.run(ttfc_driver(args.ttfc_driver, args.ttfc_requests))))
        return 0
    default = [*DEFAULT_TARGETS, "litellm"] if args.litellm else DEFAULT_TARGETS
    args.targets = [t.strip() for t in (args.targets or ",".join(default)).split(",") if t.strip()]
    if "litellm" in args.targets and not args.litellm:
        parser.error("the litellm target needs --litellm PATH")
    if args.baseline and "baseline" not in args.targets:
        args.targets.append("baseline")
    if "baseline" in args.targets and not (args.baseline and (args.baseline / "app").is_dir()):
        parser.error("the baseline target needs --baseline DIR, a checkout with app/")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.ttfc_targets = {t.strip() for t in args.ttfc_targets.split(",")}
    if unknown := set(args.targets) - set(TARGETS):
        parser.error(f"unknown targets: {sorted(unknown)}")
    tools = ("wrk", "taskset", "chrt") if args.rt_stream else ("wrk", "taskset")
    if missing := [tool for tool in tools if not shutil.which(tool)]:
        parser.error(f"missing tools: {missing} (apt-get install -y wrk util-linux)")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    results: Result = {
        "meta": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "ttfc_requests": args.ttfc_requests,
            "chunks": args.chunks,
            "rounds": args.rounds,
            "rt_stream": args.rt_stream,
            "baseline": str(args.baseline) if args.baseline else None,
            "python": platform.python_version(),
            "wrk": (wrk_version.stdout or wrk_version.stderr).split("\n", 1)[0],
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "request_body": BODY,
        },
        "rounds": [],
        "targets": {},
    }
    with tempfile.TemporaryDirectory(prefix="ai-gateway-bench-") as tmp_name:
        tmp, upstream = Path(tmp_name), None
        try:
            up_port = free_port()
            up_cmd = upstream_command(up_port, args.chunks)
            upstream = Child("upstream", up_cmd, tmp, core=LOAD_CORE)
            if error := wait_ready(upstream, up_port, timeout=15.0):
                print(f"fake upstream failed: {error}\n{upstream.tail()}", file=sys.stderr)
                return 1
            for rnd in range(args.rounds):
                this_round: dict[str, Result] = {}
                results["rounds"].append(this_round)
                order = args.targets if rnd % 2 == 0 else args.targets[::-1]  # fair to each slot
                for name in order:
                    print(f"== {name} (round {rnd + 1}/{args.rounds})", flush=True)
                    res: Result = {}
                    this_round[name] = res
                    bench_target(name, args, upstream, up_port, tmp, res)
                    if res["status"] != "ok":
                        print(f"  FAILED: {res['error']}\n{res['log_tail']}", flush=True)
        except KeyboardInterrupt:
            print("interrupted; stopping children", file=sys.stderr)
            results["meta"]["interrupted"] = True
        finally:
            if upstream is not None:
                upstream.stop()
    results["meta"]["loadavg_end"] = os.getloadavg()
    for name in args.targets:
        rounds = [r[name] for r in results["rounds"] if name in r]
        if rounds:
            results["targets"][name] = median_of(rounds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + table(results) + f"\n\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
