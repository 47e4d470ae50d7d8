"""`python -m app serve`, `worker`, `watchdog`, `keys create|list`, `ingest PATH...` and
`reindex` (and the `ai-gateway` console script)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn

from app import knowledge_cli
from app.config import ConfigError, Settings, load_settings
from app.ops.logging import setup_logging
from app.security.keys import (
    KeyEntry,
    created_now,
    digest,
    key_file_path,
    new_key,
    read_key_file,
    update_key_file,
)


def _tune_gc() -> None:
    """Each request allocates many short-lived dicts; at CPython's default gen-0 threshold (700)
    the collector ran every few requests, costing about 15% of throughput and most of the p99
    (docs/PERFORMANCE.md). What startup creates is frozen out of collection by the lifespan
    (`main.py`), once the services are open."""
    gc.set_threshold(20_000, 20, 20)


def _serve(args: argparse.Namespace) -> int:
    from app.main import create_app  # not needed by `keys`, which starts faster without it

    try:
        settings = load_settings()
        setup_logging(settings.server)
        workers = settings.server.workers
        if workers > 1:
            _check_workers(settings)
            _multiprocess_metrics(settings.server.data_dir)
            app: object = "app.cli:worker_app"
        else:
            app = create_app(settings, freeze_startup=True)
    except ConfigError as exc:
        print(f"ai-gateway: {exc}", file=sys.stderr)
        return 2
    _tune_gc()
    uvicorn.run(
        app,  # type: ignore[arg-type]
        factory=workers > 1,
        workers=workers,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def worker_app() -> Any:
    """The app of one worker process (WORKERS > 1), made in that process."""
    from app.main import create_app

    settings = load_settings()
    setup_logging(settings.server)
    _tune_gc()
    return create_app(settings, freeze_startup=True)


def _check_workers(settings: Settings) -> None:
    """What WORKERS > 1 needs: state the worker processes share."""
    if not settings.state.redis_url:
        raise ConfigError("WORKERS > 1 needs REDIS_URL: each worker would start its own Redis")
    knowledge = settings.knowledge
    if (knowledge.rag_enabled or knowledge.memory_enabled) and not knowledge.chroma_host:
        raise ConfigError(
            "WORKERS > 1 needs CHROMA_HOST (the embedded Chroma is for one process), "
            "or RAG_ENABLED=false and MEMORY_ENABLED=false"
        )


def _multiprocess_metrics(data_dir: Path) -> None:
    """Each worker writes its metrics to PROMETHEUS_MULTIPROC_DIR (default DATA_DIR/metrics),
    emptied first: what a past run's processes wrote is not this run's."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or data_dir / "metrics")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _worker(_: argparse.Namespace) -> int:
    from app.worker import run_worker

    settings = load_settings()
    setup_logging(settings.server)
    asyncio.run(run_worker(settings))
    return 0


def _watchdog(args: argparse.Namespace) -> int:
    from app.watchdog.run import run  # light: none of the gateway's modules

    settings = load_settings()
    if args.mode:
        ops = settings.ops.model_copy(update={"watchdog_mode": args.mode})
        settings = replace(settings, ops=ops)
    return run(settings)


def _keys_file(args: argparse.Namespace) -> tuple[Path, bool]:
    """The file named by --file, else API_KEYS_FILE, else DATA_DIR/keys.yaml; and whether the
    gateway reads it (it reads API_KEYS_FILE, else DATA_DIR/keys.yaml)."""
    settings = load_settings()
    read = key_file_path(settings.security, settings.server.data_dir)
    path: Path = args.file or read
    return path, path.resolve() == read.resolve()


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def _create_key(args: argparse.Namespace) -> int:
    path, configured = _keys_file(args)
    key = new_key()
    entry = KeyEntry(
        digest=digest(key),
        owner=None if args.service else args.owner,
        rpm=args.rpm,
        tpm=args.tpm,
        name=args.name,
        created=created_now(),
        admin=args.admin,
    )
    update_key_file(path, lambda entries: [*entries, entry])
    print(key, flush=True)
    who = f"owner {entry.owner}" if entry.owner else "a service key (acts for the named user)"
    role = "admin key" if entry.admin else "key"
    print(
        f"created {role} {entry.key_id} for {who}, rpm {_limit(entry.rpm)}, tpm "
        f"{_limit(entry.tpm)}, in {path}; the key is shown only this once",
        file=sys.stderr,
    )
    if not configured:
        print(f"set API_KEYS_FILE={path} for the gateway to accept it", file=sys.stderr)
    else:
        print(
            "a running gateway accepts it once restarted (keys made with POST /v1/keys are "
            "accepted at once)",
            file=sys.stderr,
        )
    return 0


def _list_keys(args: argparse.Namespace) -> int:
    path, _ = _keys_file(args)
    rows = [("KEY_ID", "OWNER", "NAME", "ROLE", "RPM", "TPM", "CREATED")]
    for entry in read_key_file(path):
        rows.append(
            (
                entry.key_id,
                entry.owner or "(service)",
                entry.name or "-",
                "admin" if entry.admin else "standard",
                _limit(entry.rpm),
                _limit(entry.tpm),
                entry.created or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for *cells, last in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=True)), last]))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _keys_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys", help="create and list API keys in the keys file (API_KEYS_FILE)"
    )
    actions = keys.add_subparsers(dest="action", required=True)
    file_help = (
        "the keys file, .yaml, .yml or .json (default: API_KEYS_FILE, else DATA_DIR/keys.yaml)"
    )
    create = actions.add_parser(
        "create", help="create a key, print it once and store only its hash"
    )
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--owner", type=_text, help="the user the key acts as")
    who.add_argument(
        "--service",
        action="store_true",
        help="no owner: a service key, which acts for the user each request names",
    )
    create.add_argument("--rpm", type=_positive, help="requests per minute (default: unlimited)")
    create.add_argument("--tpm", type=_positive, help="tokens per minute (default: unlimited)")
    create.add_argument("--name", type=_text, help="a label for the key")
    create.add_argument(
        "--admin",
        action="store_true",
        help="an admin key: may also use /debug/routes, /cache/invalidate and /v1/keys",
    )
    create.add_argument("--file", type=Path, help=file_help)
    create.set_defaults(handler=_create_key)
    listing = actions.add_parser("list", help="list the keys (never the keys themselves)")
    listing.add_argument("--file", type=Path, help=file_help)
    listing.set_defaults(handler=_list_keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ai-gateway", description="OpenAI-compatible AI gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway's HTTP server")
    serve.add_argument("--host", help="interface to listen on (default: HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    serve.set_defaults(handler=_serve)
    worker = commands.add_parser(
        "worker", help="run pipeline steps from the broker of BROKER_URL (any number of workers)"
    )
    worker.set_defaults(handler=_worker)
    watchdog = commands.add_parser(
        "watchdog", help="probe the gateway, restart it when it hangs or dies, send alerts"
    )
    watchdog.add_argument(
        "--mode",
        choices=["supervise", "docker"],
        help="supervise: run the gateway as a child; docker: watch labelled containers "
        "(default: WATCHDOG_MODE)",
    )
    watchdog.set_defaults(handler=_watchdog)
    _keys_parser(commands)
    knowledge_cli.add_commands(commands)
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        result: int = handler(args)
    except ConfigError as exc:
        print(f"ai-gateway: {exc}", file=sys.stderr)
        return 2
    return result
