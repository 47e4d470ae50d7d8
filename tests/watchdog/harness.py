"""`python -m app watchdog` as a real process for the tests, with the stand-in gateway
(`tests/fakes/health_server.py`) as its child unless a test says otherwise. Every process a test
starts is stopped by its PID when the test ends."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from tests.fakes.serve import free_port
from tests.test_cli import child_env

REPO = Path(__file__).resolve().parents[2]
FAKE_GATEWAY = REPO / "tests" / "fakes" / "health_server.py"

T = TypeVar("T")

FAST = {
    "WATCHDOG_INTERVAL": "0.3",
    "WATCHDOG_TIMEOUT": "0.2",
    "WATCHDOG_FAILURES": "3",
    "WATCHDOG_GRACE": "2",
    "WATCHDOG_START_PERIOD": "10",
    "WATCHDOG_BACKOFF": "0.1",
    "WATCHDOG_BACKOFF_MAX": "0.4",
    "WATCHDOG_RESTARTS": "5",
    "WATCHDOG_WINDOW_MINUTES": "5",
    "ALERT_REMINDER_MINUTES": "0",
    "ALERT_MEMORY_PERCENT": "0",
    "ALERT_METRICS_INTERVAL": "0.5",
}
"""Settings for tests that take seconds: a probe every 0.3 s, three failures, 2 s grace."""


def wait_for(check: Callable[[], T | None], within: float, what: str, log: Path | None = None) -> T:
    """Poll `check` every 20 ms until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            text = "" if log is None else f"\n--- watchdog log ---\n{log.read_text()}"
            pytest.fail(f"not within {within} s: {what}{text}")
        time.sleep(0.02)


class FakeGateway:
    """The stand-in gateway's command line, port and files: `state` (what it answers; see
    tests/fakes/health_server.py) and `starts` (a pid per start)."""

    def __init__(self, directory: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = directory / "state.json"
        self.starts = directory / "starts"
        self.argv = [
            sys.executable,
            str(FAKE_GATEWAY),
            "--port",
            str(self.port),
            "--state",
            str(self.state),
            "--starts",
            str(self.starts),
            *flags,
        ]

    def set(self, **state: Any) -> None:
        """Change what it answers, from its next request on."""
        partial = self.state.with_suffix(".tmp")
        partial.write_text(json.dumps(state))
        partial.replace(self.state)

    def started(self) -> int:
        return len(self.starts.read_text().split()) if self.starts.exists() else 0

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/live", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def settings(self) -> dict[str, str]:
        return {"WATCHDOG_COMMAND": shlex.join(self.argv), "WATCHDOG_URL": self.url}


class Watchdog:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self.seen: dict[int, psutil.Process] = {}

    def text(self) -> str:
        return self.log.read_text()

    def child(self) -> psutil.Process | None:
        """The gateway it runs now (a live child, not a zombie), if any."""
        with suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children():
                self.seen.setdefault(child.pid, child)
                if child.status() != psutil.STATUS_ZOMBIE:
                    return child
        return None

    def child_pid(self) -> int | None:
        child = self.child()
        return None if child is None else child.pid

    def wait_log(self, text: str, within: float = 10, times: int = 1) -> None:
        """Wait until the log says `text` (`times` times)."""
        wait_for(lambda: self.text().count(text) >= times, within, f"{text!r} in the log", self.log)

    def wait_exit(self, within: float) -> int:
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the watchdog still runs after {within} s:\n{self.text()}")

    def stop(self) -> None:
        """SIGTERM, as a service manager would; SIGKILL if it does not exit; then kill any
        child it left (by PID)."""
        self.child()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for child in self.seen.values():
            with suppress(psutil.Error):
                if child.is_running():
                    child.kill()


def settings(**changes: str) -> dict[str, str]:
    """The watchdog's environment: no setting from this one, FAST, then `changes`."""
    env = child_env(PYTHONPATH=str(REPO), **FAST)
    env.update(changes)
    return env


@contextmanager
def watchdog(env: dict[str, str], directory: Path, *args: str) -> Iterator[Watchdog]:
    """`python -m app watchdog` run in `directory` (so no .env of the checkout is read), logging
    to `directory/watchdog.log`; stopped (with what it started) afterwards."""
    log = directory / "watchdog.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "watchdog", *args],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Watchdog(process, log)
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def supervising(
    directory: Path, gateway: FakeGateway, **changes: str
) -> Iterator[tuple[Watchdog, int]]:
    """The watchdog supervising `gateway`, once it is up: yields the watchdog and the pid of its
    first gateway."""
    with watchdog(settings(**gateway.settings(), **changes), directory) as running:
        running.wait_log("gateway is up")
        pid = running.child_pid()
        assert pid is not None
        yield running, pid
