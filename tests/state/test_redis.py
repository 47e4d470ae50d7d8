"""The embedded Redis: a real server on a unix socket in DATA_DIR, persistent, stopped cleanly;
and what health says when Redis goes away."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from app.state.redis import EmbeddedRedis, connect, open_redis, redis_server_binary
from tests.conftest import MakeGateway, gateway_settings, start_redis


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
        assert report["redis"]["status"] == "up"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        time.sleep(2.1)  # the report is cached for 2 s
        report = httpx.get(f"{url}/health").json()
        assert report["status"] == "degraded"
        assert report["redis"]["status"] == "down"
        assert httpx.get(f"{url}/health/ready").status_code == 200
        process = start_redis(tmp_path)
        time.sleep(2.1)
        assert httpx.get(f"{url}/health").json()["redis"]["status"] == "up"
    finally:
        process.terminate()
        process.wait(10)
