"""The embedded Redis: a real server on a unix socket in DATA_DIR, persistent, stopped cleanly,
dying with its gateway and never run twice on one directory; and what health says when Redis
goes away."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from app.state.redis import EmbeddedRedis, connect, open_redis, redis_server_binary
from tests.conftest import MakeGateway, gateway_settings, start_redis
from tests.fakes.serve import free_port
from tests.test_cli import child_env, serving, started

GONE_WITHIN = 10.0


def gone(pid: int, within: float = GONE_WITHIN) -> bool:
    """Whether the process ends (or is a zombie nobody reaps yet) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def server_pid(socket: Path) -> int:
    with redis.Redis(unix_socket_path=str(socket)) as client:
        return int(client.info("server")["process_id"])


def test_a_server_binary_is_found() -> None:
    binary = Path(redis_server_binary())
    assert binary.name == "redis-server"
    assert os.access(binary, os.X_OK)


async def test_embedded_redis_persists_across_restarts(tmp_path: Path) -> None:
    settings = gateway_settings(redis_url="", data_dir=tmp_path)
    client, embedded = await open_redis(settings.state, settings.server.data_dir)
    assert embedded is not None
    assert embedded.socket == (tmp_path / "redis" / "redis.sock").resolve()
    assert oct(embedded.socket.stat().st_mode & 0o777) == "0o700"
    await client.set("kept", "yes")
    await client.aclose()
    await embedded.stop()
    assert not embedded.socket.exists()
    assert any((tmp_path / "redis").glob("appendonly*"))

    client, embedded = await open_redis(settings.state, settings.server.data_dir)
    assert embedded is not None
    assert await client.get("kept") == b"yes"
    await client.aclose()
    await embedded.stop()


async def test_an_external_redis_url_starts_nothing(redis_url: str) -> None:
    client, embedded = await open_redis(gateway_settings(redis_url=redis_url).state, Path())
    assert embedded is None
    assert await client.ping()
    await client.aclose()


async def test_the_client_reconnects_when_redis_comes_back(tmp_path: Path) -> None:
    process = start_redis(tmp_path)
    client = connect(f"unix://{tmp_path}/redis.sock", timeout=1)
    await client.set("a", "1")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    with pytest.raises(Exception, match=r"(?i)connect|closed|no such file|refused"):
        await client.get("a")
    process = start_redis(tmp_path)
    try:
        assert await client.get("a") == b"1"  # the append-only file brought it back
    finally:
        await client.aclose()
        process.terminate()
        process.wait(10)


async def test_a_stopped_embedded_server_is_stopped_once(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path)
    await embedded.start()
    await embedded.stop()
    await embedded.stop()


def test_health_is_degraded_while_redis_is_down(make_gateway: MakeGateway, tmp_path: Path) -> None:
    process = start_redis(tmp_path)
    try:
        url = make_gateway(redis_url=f"unix://{tmp_path}/redis.sock")
        report = httpx.get(f"{url}/health").json()
        assert report["status"] == "ok"
        assert report["redis"]["status"] == "healthy"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        time.sleep(2.1)  # the report is cached for 2 s
        report = httpx.get(f"{url}/health").json()
        assert report["status"] == "degraded"
        assert report["redis"]["status"] == "unhealthy"
        assert httpx.get(f"{url}/health/ready").status_code == 200
        process = start_redis(tmp_path)
        time.sleep(2.1)
        assert httpx.get(f"{url}/health").json()["redis"]["status"] == "healthy"
    finally:
        process.terminate()
        process.wait(10)


def test_the_embedded_redis_dies_with_a_gateway_killed_with_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    log = tmp_path / "gateway.log"
    with started(child_env(PORT=str(port), DATA_DIR=str(data)), log, port) as (gateway, _):
        pid = server_pid(data / "redis" / "redis.sock")
        try:
            assert pid in [child.pid for child in psutil.Process(gateway.pid).children()]
            assert (data / "redis" / "redis.pid").read_text().strip() == str(pid)
            gateway.kill()
            gateway.wait(10)
            assert gone(pid), "the embedded redis-server outlived its gateway"
        finally:
            if not gone(pid, within=0):
                os.kill(pid, signal.SIGKILL)


def test_a_start_stops_a_redis_server_left_running_on_its_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    directory = data / "redis"
    directory.mkdir(parents=True)
    leftover = start_redis(directory)  # as gateways started it: own session, no death signal
    try:
        with redis.Redis(unix_socket_path=str(directory / "redis.sock")) as client:
            client.set("kept", "yes")
        port = free_port()
        log = tmp_path / "gateway.log"
        with serving(child_env(PORT=str(port), DATA_DIR=str(data)), log, port):
            assert leftover.wait(GONE_WITHIN) == 0  # stopped with SIGTERM, its data saved
            assert f"pid {leftover.pid}" in log.read_text()
            pid = server_pid(directory / "redis.sock")
            assert pid != leftover.pid
            with redis.Redis(unix_socket_path=str(directory / "redis.sock")) as client:
                assert client.get("kept") == b"yes"
        assert gone(pid)
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait(10)


async def test_a_pid_file_naming_another_process_is_no_reason_to_stop_it(
    tmp_path: Path, redis_url: str
) -> None:
    directory = tmp_path / "redis"
    directory.mkdir()
    other = server_pid(Path(redis_url.removeprefix("unix://")))  # a redis-server, not ours
    (directory / "redis.pid").write_text(f"{other}\n")
    client, embedded = await open_redis(gateway_settings(redis_url="").state, tmp_path)
    assert embedded is not None
    try:
        assert await client.ping()
        assert psutil.Process(other).is_running()
        assert (directory / "redis.pid").read_text().strip() != str(other)
    finally:
        await client.aclose()
        await embedded.stop()


async def test_a_second_gateway_on_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    await first.start()
    try:
        with pytest.raises(RuntimeError, match="REDIS_URL=unix://"):
            await EmbeddedRedis(tmp_path).start()
        with redis.Redis(unix_socket_path=str(first.socket)) as client:
            assert client.ping()
    finally:
        await first.stop()
    second = EmbeddedRedis(tmp_path)
    await second.start()
    await second.stop()
