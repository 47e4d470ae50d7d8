"""`python -m app serve` (and the `ai-gateway` console script)."""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys

import uvicorn

from app.config import ConfigError, load_settings
from app.main import create_app
from app.ops.logging import setup_logging


def _tune_gc() -> None:
    """Each request allocates many short-lived dicts; at CPython's default gen-0 threshold (700)
    the collector ran every few requests, costing about 15% of throughput and most of the p99
    (docs/PERFORMANCE.md). What startup created is frozen out of collection altogether."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        setup_logging(settings.log_level)
        app = create_app(settings)
    except ConfigError as exc:
        print(f"ai-gateway: {exc}", file=sys.stderr)
        return 2
    _tune_gc()
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ai-gateway", description="OpenAI-compatible AI gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway's HTTP server")
    serve.add_argument("--host", help="interface to listen on (default: HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    serve.set_defaults(handler=_serve)
    args = parser.parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result
