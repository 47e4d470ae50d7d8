"""The Python sandbox, with real processes: what the code may do, and everything it may not."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest

from app.security.sandbox import PROCESS_LABEL, Sandbox, SandboxError

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 1.5
FORK_BOMB = """
import os, time
made = 0
for _ in range(100):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.setsid()  # leave the process group: only the pid namespace still holds it
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.001)
    made += 1
print(made, flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(timeout=TIMEOUT, memory_mb=128, max_processes=8, output_limit=1000)


def sandbox_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if PROCESS_LABEL in (process.info["cmdline"] or []):
            found.append(process)
    return found


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


async def assert_none_left(within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while left := sandbox_processes():
        assert time.monotonic() < deadline, f"sandbox processes outlived their run: {left}"
        await asyncio.sleep(0.05)


async def test_runs_code_and_returns_its_output(sandbox: Sandbox) -> None:
    result = await sandbox.run("import sys\nprint('hello', 6 * 7)\nprint('oops', file=sys.stderr)")
    assert result.stdout == "hello 42\n"
    assert result.stderr == "oops\n"
    assert result.exit_code == 0
    assert not result.timed_out
    assert not result.truncated
    assert 0 < result.startup_ms <= result.duration_ms


async def test_full_isolation_applies_on_this_host(sandbox: Sandbox) -> None:
    isolation = (await sandbox.run("pass")).isolation
    assert isolation.weaker == ()
    assert isolation.applied[0].startswith("namespaces (")
    assert any(layer.startswith("landlock ABI") for layer in isolation.applied)
    assert not str(isolation).startswith("WEAKER")


async def test_exit_status_and_traceback(sandbox: Sandbox) -> None:
    assert (await sandbox.run("raise SystemExit(3)")).exit_code == 3
    assert (await sandbox.run("exit(4)")).exit_code == 4
    result = await sandbox.run("x = 1\n1 / 0")
    assert result.exit_code == 1
    assert result.stderr.startswith('Traceback (most recent call last):\n  File "main.py", line 2')
    assert "ZeroDivisionError: division by zero" in result.stderr


async def test_long_output_keeps_its_start_and_end(sandbox: Sandbox) -> None:
    result = await sandbox.run("print('é' * 5000)\nprint('done')")
    assert result.stdout == "é" * 500 + "\n[… cut …]\n" + "é" * 494 + "\ndone\n"
    assert result.truncated
    assert result.exit_code == 0


async def test_a_traceback_survives_a_flood_before_it(sandbox: Sandbox) -> None:
    flood = "import sys\nfor _ in range(10**5):\n    print('noise', file=sys.stderr)\n1 / 0"
    result = await sandbox.run(flood)
    assert result.stderr.startswith("noise\nnoise\n")
    assert result.stderr.endswith("ZeroDivisionError: division by zero\n")
    assert result.truncated


async def test_environment_is_clean(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    code = f"""
import os
print(sorted(os.environ))
try:
    open('/proc/{os.getpid()}/environ', 'rb').read()
    print('read the gateway environment')
except OSError as exc:
    print(type(exc).__name__)
"""
    result = await sandbox.run(code)
    assert result.stdout == "['HOME', 'LANG', 'PATH', 'TMPDIR']\nPermissionError\n"
    assert "sk-test-secret" not in result.stdout + result.stderr


async def test_infinite_loop_is_stopped_while_the_loop_keeps_serving(sandbox: Sandbox) -> None:
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        result = await sandbox.run("while True:\n    pass")
    finally:
        ticker.cancel()
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.exit_code is None
    assert TIMEOUT <= elapsed < TIMEOUT + 2
    assert len(ticks) >= 10
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5
    await assert_none_left()


async def test_fork_bomb_is_bounded_and_nothing_survives(sandbox: Sandbox) -> None:
    result = await sandbox.run(FORK_BOMB)
    assert result.timed_out
    assert 1 <= int(result.stdout) < sandbox.max_processes
    await assert_none_left()


async def test_memory_bomb_is_stopped(sandbox: Sandbox) -> None:
    result = await sandbox.run("hoard = []\nwhile True:\n    hoard.append(bytearray(10**6))")
    assert not result.timed_out
    assert result.exit_code == 1
    assert result.stderr.rstrip().endswith("MemoryError")


async def test_cannot_connect_to_loopback(sandbox: Sandbox) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"""
import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=1)
    print('connected')
except OSError as exc:
    print(type(exc).__name__)
"""
        result = await sandbox.run(code)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert result.stdout.strip() in {"PermissionError", "OSError"}


async def test_cannot_read_etc_shadow(sandbox: Sandbox) -> None:
    result = await sandbox.run("print(open('/etc/shadow').read())")
    assert result.exit_code == 1
    assert "PermissionError" in result.stderr
    assert result.stdout == ""


async def test_writes_only_in_its_own_work_directory(sandbox: Sandbox) -> None:
    outside = Path("/tmp") / f"sandbox-escape-{uuid.uuid4().hex}"
    code = f"""
import os
with open('notes.txt', 'w') as file:
    file.write('kept')
print(open('notes.txt').read(), os.getcwd())
open({str(outside)!r}, 'w').write('escaped')
"""
    result = await sandbox.run(code)
    assert "PermissionError" in result.stderr
    assert not exists(outside)
    text, workdir = result.stdout.split()
    assert text == "kept"
    assert Path(workdir).name.startswith(PROCESS_LABEL)
    assert not exists(workdir)


async def test_cancelling_the_run_kills_it_and_cleans_up() -> None:
    sandbox = Sandbox(timeout=30, memory_mb=128, max_processes=8, output_limit=1000)
    run = asyncio.create_task(sandbox.run("while True:\n    pass"))
    deadline = time.monotonic() + 5
    while not (started := sandbox_processes()):
        assert time.monotonic() < deadline, "the sandbox did not start"
        await asyncio.sleep(0.01)
    workdir = started[0].cwd()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await assert_none_left()
    assert not exists(workdir)


async def test_weaker_isolation_is_reported() -> None:
    sandbox = Sandbox(
        timeout=TIMEOUT, memory_mb=128, max_processes=8, output_limit=1000, namespaces=False
    )
    with socket.create_server(("127.0.0.1", 0)) as server:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {server.getsockname()[1]}))"
        result = await sandbox.run(code)
    assert "PermissionError" in result.stderr
    assert "no network namespace (turned off): only TCP is blocked" in result.isolation.weaker
    assert str(result.isolation).startswith("WEAKER ISOLATION: no network namespace")


async def test_an_interpreter_that_cannot_start_is_an_error(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.executable", "/nonexistent/python3")
    with pytest.raises(SandboxError, match="could not start /nonexistent/python3"):
        await sandbox.run("print(1)")


def system_python() -> str | None:
    """A Python 3.11+ that uid 65534 can run, to play a gateway that does not run as root."""
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3"):
        check = [candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"]
        if shutil.which(candidate) and subprocess.run(check, user=65534).returncode == 0:
            return candidate
    return None


NON_ROOT_GATEWAY = """
import asyncio, json, sys
from app.security.sandbox import Sandbox

CODE = '''
import os, socket
os.makedirs("locked")
open("locked/file", "w").close()
os.chmod("locked", 0o500)  # the gateway must still be able to remove the work directory
print(os.getcwd())
print(os.getuid())
for action in (lambda: socket.create_connection(("127.0.0.1", 9)),
               lambda: open("/tmp/non-root-escape", "w")):
    try:
        action()
        print("allowed")
    except OSError as exc:
        print(type(exc).__name__)
'''

async def main():
    sandbox = Sandbox(timeout=5, memory_mb=128, max_processes=8, output_limit=1000)
    result = await sandbox.run(CODE)
    isolation = result.isolation
    print(json.dumps([result.stdout, list(isolation.applied), list(isolation.weaker)]))

asyncio.run(main())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the suite already runs as a non-root gateway")
def test_a_non_root_gateway_is_confined_by_a_user_namespace() -> None:
    python = system_python()
    if python is None:
        pytest.skip("no Python 3.11+ that uid 65534 can run")
    completed = subprocess.run(
        [python, "-c", NON_ROOT_GATEWAY],
        user=65534,
        group=65534,
        extra_groups=[],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    stdout, applied, weaker = json.loads(completed.stdout)
    workdir, rest = stdout.split("\n", 1)
    assert rest == "65534\nPermissionError\nPermissionError\n"
    assert not exists(workdir)
    assert applied[0] == "namespaces (user, network, pid, IPC)"
    assert "the gateway's own uid 65534" in applied
    assert weaker == []
    assert not Path("/tmp/non-root-escape").exists()
