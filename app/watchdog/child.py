"""The supervised gateway: a child process in a process group of its own, stopped gracefully
(the signal, then SIGKILL after the grace period) as a whole group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import psutil

log = logging.getLogger("app.watchdog")


class Child:
    def __init__(self, argv: list[str], grace: float) -> None:
        self.argv = argv
        self.grace = grace
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def start(self) -> None:
        """Start it; its output goes where the watchdog's goes."""
        self._process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        log.info("started the gateway, pid %d: %s", self._process.pid, " ".join(self.argv))

    async def wait(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        """Send `signum` to its group (with SIGCONT, so that a stopped process gets it too), wait
        the grace period, then SIGKILL the group; what is left of the group is killed as well."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            _signal_group(process.pid, signum)
            _signal_group(process.pid, signal.SIGCONT)
            try:
                async with asyncio.timeout(self.grace):
                    await process.wait()
            except TimeoutError:
                log.warning("pid %d still runs after %g s: SIGKILL", process.pid, self.grace)
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        _signal_group(process.pid, signal.SIGKILL)
        log.info("the gateway (pid %d) stopped, exit code %s", process.pid, process.returncode)

    def rss(self) -> int | None:
        """Resident bytes of the gateway and its descendants, or None when it does not run."""
        if self._process is None or self._process.returncode is not None:
            return None
        try:
            root = psutil.Process(self._process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
