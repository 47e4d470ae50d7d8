"""A stand-in gateway for the watchdog's tests, run as a real process:
`python tests/fakes/health_server.py --port PORT [--state FILE] [--starts FILE] [--crash]
[--ignore-sigterm] [--never-listen]`.

It serves `/health/live`, `/health/ready`, `/health` and `/metrics` as the gateway does, and reads
`--state` (JSON) on every request, so that a test changes how it behaves while it runs:

    {"ready": 503,                                   /health/ready's status (default 200)
     "health": {"redis": {"status": "down", ...}},  entries merged into /health's report
     "metrics": null | {"requests": 20, "seconds": 0.05, "errors": 0.1}}

`metrics` null (the default) answers /metrics with 404; otherwise every scrape first records
`requests` more requests on `/v1/chat/completions`, each taking `seconds`, the share `errors` of
them answered 500, plus as many fast `/health/live` probes (which the watchdog must not count).
Each start appends the pid to `--starts`; `--crash` then exits 3 at once, `--never-listen` runs
without ever listening (a gateway stuck in its start).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest

REGISTRY = CollectorRegistry()
DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP server requests.",
    ["http_request_method", "http_route", "http_response_status_code"],
    registry=REGISTRY,
)
STATE: Path | None = None


def state() -> dict[str, Any]:
    if STATE is None or not STATE.exists():
        return {}
    loaded: dict[str, Any] = json.loads(STATE.read_text())
    return loaded


def record(metrics: dict[str, Any]) -> None:
    requests = int(metrics.get("requests", 0))
    failed = round(requests * float(metrics.get("errors", 0.0)))
    for i in range(requests):
        status = "500" if i < failed else "200"
        DURATION.labels("POST", "/v1/chat/completions", status).observe(metrics["seconds"])
        DURATION.labels("GET", "/health/live", "200").observe(0.001)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        now = state()
        if self.path == "/health/live":
            self.answer(200, {"status": "ok"})
        elif self.path == "/health/ready":
            ready = int(now.get("ready", 200))
            self.answer(ready, {"status": "ready" if ready == 200 else "not ready"})
        elif self.path == "/health":
            report: dict[str, Any] = {
                "status": "ok",
                "providers": {"openai": {"status": "up", "detail": "1 model"}},
                "redis": {"status": "up", "detail": "PONG"},
            }
            report.update(now.get("health", {}))
            self.answer(200, report)
        elif self.path == "/metrics" and now.get("metrics"):
            record(now["metrics"])
            self.answer(200, generate_latest(REGISTRY), "text/plain; version=0.0.4")
        else:
            self.answer(404, {"detail": "Not Found"})

    def answer(self, status: int, body: Any, kind: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    global STATE
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--starts", type=Path)
    parser.add_argument("--crash", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--never-listen", action="store_true")
    args = parser.parse_args()
    STATE = args.state
    if args.starts:
        with args.starts.open("a") as starts:
            starts.write(f"{os.getpid()}\n")
    if args.crash:
        print("health_server: crashing on start as asked", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.never_listen:
        signal.pause()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
