"""`python -m app serve` (and the `ai-gateway` console script)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import uvicorn

from app.config import ConfigError, load_settings
from app.ops.logging import setup_logging


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        setup_logging(settings.log_level)
        from app.main import create_app

        app = create_app(settings)
    except ConfigError as exc:
        print(f"ai-gateway: {exc}", file=sys.stderr)
        return 2
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
