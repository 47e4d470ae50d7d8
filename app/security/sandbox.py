"""Run untrusted Python in a separate, confined process.

Every run gets a fresh interpreter (standard library only) in a private temporary work
directory, with a clean environment, closed stdin, captured and capped output and a wall-clock
timeout after which its whole process group is killed. Before the user's code starts, the child
confines itself as far as the host allows:

- network, pid and IPC namespaces: no network at all (not even loopback), and every process the
  code starts ends with it. As root directly; otherwise inside a user namespace.
- uid 65534 (nobody) when the gateway runs as root, so root-only files stay unreadable.
- a user namespace, so the process limit counts this run's processes only.
- rlimits: CPU time, address space, file size, open files, processes, no core dumps.
- no_new_privs and Landlock: reads only beneath system and Python directories, writes only in the
  work directory, no TCP (ABI 4), no signals or abstract unix sockets beyond the sandbox (ABI 6).

A layer the host refuses is skipped, and `Isolation` says what applied and what is weaker. The
child reports on a pipe it closes before the user's code runs, so the code cannot forge it. It
then forks the process that runs the code and waits for it, to report its exit status.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import inspect
import logging
import math
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from app.security import sandbox_child

if TYPE_CHECKING:
    from app.config import ToolSettings

log = logging.getLogger(__name__)

PROCESS_LABEL = "ai-gateway-sandbox"
"""The first argument of every sandbox process, to find them in `ps`."""

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/dev")
_KERNEL_DIRS = ("/proc", "/sys")
_PATH = "/usr/local/bin:/usr/bin:/bin"
_READ_CHUNK = 1 << 16
_DRAIN_GRACE = 0.5


class SandboxError(Exception):
    """The sandbox itself failed: the interpreter could not start or set itself up."""


@functools.cache
def _child_source() -> str:
    return inspect.getsource(sandbox_child)


@dataclass(frozen=True, slots=True)
class Isolation:
    """What confined a run: the layers that applied, and how it falls short of the full set."""

    applied: tuple[str, ...]
    weaker: tuple[str, ...]

    def __str__(self) -> str:
        applied = ", ".join(self.applied)
        if not self.weaker:
            return applied
        return f"WEAKER ISOLATION: {'; '.join(self.weaker)}. Applied: {applied}"


@dataclass(frozen=True, slots=True)
class SandboxResult:
    stdout: str
    stderr: str
    exit_code: int | None
    """The code's exit status, negative for a signal; None when it was stopped at the timeout."""
    timed_out: bool
    truncated: bool
    duration_ms: float
    startup_ms: float
    """From the call to the moment the confined child was about to run the user's code."""
    isolation: Isolation


class Sandbox:
    """Runs each program in a fresh confined process; one instance serves concurrent runs."""

    def __init__(
        self,
        *,
        timeout: float,
        memory_mb: int,
        max_processes: int,
        output_limit: int,
        namespaces: bool = True,
    ) -> None:
        """`namespaces=False` skips the namespace layer, for hosts where it misbehaves."""
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.max_processes = max_processes
        self.output_limit = output_limit
        self.namespaces = namespaces
        self._cpu_seconds = math.ceil(timeout) + 1
        self._readable = _readable_dirs()

    @classmethod
    def from_settings(cls, settings: ToolSettings) -> Sandbox:
        return cls(
            timeout=settings.python_timeout,
            memory_mb=settings.python_memory_mb,
            max_processes=settings.python_max_processes,
            output_limit=settings.python_output_limit,
        )

    async def run(self, code: str) -> SandboxResult:
        """Run `code` as a program; raises `SandboxError` when the sandbox cannot start."""
        started = time.monotonic()
        workdir = Path(tempfile.mkdtemp(prefix=f"{PROCESS_LABEL}-"))
        try:
            (workdir / "main.py").write_text(code, encoding="utf-8", errors="replace")
            return await self._run_in(workdir, started)
        finally:
            await asyncio.shield(asyncio.to_thread(_remove_tree, workdir))

    async def _run_in(self, workdir: Path, started: float) -> SandboxResult:
        (stdout_pipe, stdout_child), (stderr_pipe, stderr_child) = _pipe(), _pipe()
        report_pipe, report_child = _pipe()
        os.set_blocking(report_pipe.fileno(), False)
        with stdout_pipe, stderr_pipe, report_pipe:
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._command(report_child),
                    cwd=workdir,
                    env=_environment(workdir),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stdout_child,
                    stderr=stderr_child,
                    start_new_session=True,
                    pass_fds=(report_child,),
                )
            except OSError as exc:
                raise SandboxError(f"could not start {sys.executable}: {exc}") from exc
            finally:
                for fd in (report_child, stdout_child, stderr_child):
                    os.close(fd)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout - (time.monotonic() - started)
            outputs = _Capture(self.output_limit), _Capture(self.output_limit)
            pipes = stdout_pipe, stderr_pipe
            timed_out = await _supervise(process, deadline, outputs, pipes)
            report = _read_report(report_pipe.fileno())
        stdout, stdout_cut = outputs[0].text()
        stderr, stderr_cut = outputs[1].text()
        if "ready" not in report:
            detail = stderr.strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
            raise SandboxError(f"the sandbox did not start: {detail[0]}")
        return SandboxResult(
            stdout=stdout,
            stderr=stderr,
            exit_code=report.get("exit_code", None if timed_out else process.returncode),
            timed_out=timed_out,
            truncated=stdout_cut or stderr_cut,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            startup_ms=round((report["ready"] - started) * 1000, 1),
            isolation=self._isolation(report),
        )

    def _command(self, report_fd: int) -> list[str]:
        return [
            sys.executable,
            *("-I", "-S", "-B", "-u", "-X", "utf8", "-c", _child_source(), PROCESS_LABEL),
            str(report_fd),
            str(self._cpu_seconds),
            str(self.memory_mb * 1024 * 1024),
            str(self.max_processes),
            str(int(self.namespaces)),
            *self._readable,
        ]

    def _isolation(self, report: dict[str, Any]) -> Isolation:
        applied: list[str] = []
        weaker: list[str] = []
        landlock: int = report.get("landlock", 0)
        if report.get("namespaces"):
            kinds = "user, network, pid, IPC" if report.get("userns") else "network, pid, IPC"
            applied.append(f"namespaces ({kinds})")
        else:
            network = "only TCP is blocked" if landlock >= 4 else "the network is reachable"
            weaker.append(f"no network namespace ({report.get('namespaces_error')}): {network}")
            weaker.append("no pid namespace: processes that leave the group may outlive the run")
        if landlock:
            applied.append(f"landlock ABI {landlock}")
        else:
            error = report.get("landlock_error")
            weaker.append(f"no landlock ({error}): files are guarded by permissions only")
        uid = report.get("uid")
        if uid == os.geteuid():
            applied.append(f"the gateway's own uid {uid}")
            if landlock < 6:
                weaker.append("the code may signal the gateway's processes")
        else:
            applied.append(f"uid {uid}")
        applied.append(
            f"rlimits ({self._cpu_seconds} s CPU, {self.memory_mb} MB,"
            f" {self.max_processes} processes)"
        )
        return Isolation(tuple(applied), tuple(weaker))


class _Capture:
    """The start and the end of a pipe's output, `limit` characters in all: the middle of a
    longer output is read and dropped, so the writer never blocks, and a traceback's last line
    survives any amount of output before it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._room = limit * 4  # UTF-8 takes at most four bytes a character
        self._head = bytearray()
        self._tail = bytearray()
        self._skipped = False

    async def drain(self, pipe: BinaryIO) -> None:
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while chunk := await reader.read(_READ_CHUNK):
                into_head = max(self._room - len(self._head), 0)
                self._head += chunk[:into_head]
                self._tail += chunk[into_head:]
                if len(self._tail) > 2 * self._room:
                    del self._tail[: -self._room]
                    self._skipped = True
        finally:
            transport.close()

    def text(self) -> tuple[str, bool]:
        """The text kept, and whether any was cut."""
        if self._skipped:
            head = self._head.decode("utf-8", "replace")
            tail = self._tail.decode("utf-8", "replace")
        else:
            head = tail = (self._head + self._tail).decode("utf-8", "replace")
            if len(head) <= self._limit:
                return head, False
        half = self._limit // 2
        return f"{head[:half]}\n[… cut …]\n{tail[half - self._limit :]}", True


async def _supervise(
    process: asyncio.subprocess.Process,
    deadline: float,
    outputs: tuple[_Capture, _Capture],
    pipes: tuple[BinaryIO, BinaryIO],
) -> bool:
    """Capture the output until the process ends or `deadline` (loop time) passes; kill the
    process group when it runs past it or the call is cancelled. True when it timed out.
    Output still arriving shortly after the end is dropped: it comes from processes that left
    the group."""
    readers = [
        asyncio.create_task(capture.drain(pipe))
        for capture, pipe in zip(outputs, pipes, strict=True)
    ]
    try:
        try:
            async with asyncio.timeout_at(deadline):
                await process.wait()
        except TimeoutError:
            return True
        return False
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        _, pending = await asyncio.wait(readers, timeout=_DRAIN_GRACE)
        for reader in pending:
            reader.cancel()
        if pending:
            await asyncio.wait(pending)


def _pipe() -> tuple[BinaryIO, int]:
    """A pipe: its reading end as an unbuffered file, and its writing end's descriptor."""
    read_fd, write_fd = os.pipe()
    return open(read_fd, "rb", buffering=0), write_fd


def _read_report(fd: int) -> dict[str, Any]:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            data += chunk
    report: dict[str, Any] = {}
    for line in data.splitlines():
        with contextlib.suppress(ValueError, SyntaxError):
            report.update(ast.literal_eval(line.decode()))
    return report


def _environment(workdir: Path) -> dict[str, str]:
    """All the child's environment: nothing is inherited, so no key or secret leaks in."""
    home = str(workdir)
    return {"PATH": _PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home}


def _readable_dirs() -> list[str]:
    """System directories and the interpreter's own, which the code may read and run."""
    prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    candidates = (*_SYSTEM_DIRS, *_KERNEL_DIRS, *prefixes)
    return [path for path in dict.fromkeys(candidates) if os.path.isdir(path)]


def _remove_tree(path: Path) -> None:
    """Remove a work directory, giving back the permissions its code may have taken away."""
    shutil.rmtree(path, ignore_errors=True)
    if not path.exists():
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for directory, subdirectories, _ in os.walk(path):
        for name in subdirectories:
            child = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(child).st_mode):
                    os.chmod(child, 0o700)
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        log.warning("could not remove the sandbox work directory %s", path)
