"""A worker process for tests/broker: `serve` (settings from the environment) with handlers that
echo, sleep, fail and crash, each noting what it does as a JSON line in BROKER_TEST_LOG.
Prints `ready` once it consumes.

    python -m tests.fakes.broker_worker
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import orjson

from app.broker import Handler, serve
from app.config import load_settings
from app.errors import InvalidRequest, UpstreamTimeout


def note(event: str, kind: str, payload: dict[str, Any]) -> None:
    path = os.environ.get("BROKER_TEST_LOG")
    if path:
        line = {"event": event, "kind": kind, "tag": payload.get("tag"), "pid": os.getpid()}
        with open(path, "ab") as log:
            log.write(orjson.dumps(line) + b"\n")


async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    note("start", "echo", payload)
    return {"echo": payload, "pid": os.getpid()}


async def sleep(payload: dict[str, Any]) -> dict[str, Any]:
    note("start", "sleep", payload)
    await asyncio.sleep(float(payload["seconds"]))
    note("end", "sleep", payload)
    return {"tag": payload.get("tag"), "pid": os.getpid()}


async def fail(payload: dict[str, Any]) -> dict[str, Any]:
    note("start", "fail", payload)
    message = str(payload["message"])
    if payload["error"] == "invalid":
        raise InvalidRequest(message, param="question")
    if payload["error"] == "upstream_timeout":
        raise UpstreamTimeout("ollama", message)
    raise ValueError(message)


async def crash(payload: dict[str, Any]) -> dict[str, Any]:
    note("start", "crash", payload)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


HANDLERS: dict[str, Handler] = {"echo": echo, "sleep": sleep, "fail": fail, "crash": crash}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(_env_file=None).pipelines
    asyncio.run(serve(settings, HANDLERS, on_ready=lambda: print("ready", flush=True)))


if __name__ == "__main__":
    main()
