"""The task transport end to end on each real broker: a TaskClient in the test, workers as real
processes (tests/fakes/broker_worker.py), short timeouts (visibility 1 s, 2 attempts)."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from typing import Any

import pytest

from app.broker import TaskClient
from app.broker.brokers import backend_for
from app.broker.envelope import DEAD_REASON, DELIVERIES, Reply, Task
from app.config import PipelineSettings, load_settings
from app.errors import (
    BrokerUnavailable,
    InvalidRequest,
    TaskDeadLettered,
    TaskFailed,
    TaskTimeout,
    UpstreamTimeout,
)
from tests.broker.conftest import Broker, Workers
from tests.fakes.serve import free_port


def soon(seconds: float) -> float:
    return time.time() + seconds


def started(workers: Workers, tag: str | None) -> list[int]:
    """The pids of the workers that started the task tagged `tag`, in order."""
    return [e["pid"] for e in workers.events() if e["event"] == "start" and e["tag"] == tag]


async def wait_until_started(workers: Workers, tag: str) -> int:
    deadline = time.monotonic() + 10
    while not started(workers, tag):
        assert time.monotonic() < deadline, f"no worker started {tag}"
        await asyncio.sleep(0.02)
    return started(workers, tag)[0]


async def test_round_trip(workers: Workers, client: TaskClient) -> None:
    worker = workers.start()
    payload = {"question": "2+2?", "nested": {"list": [1, 2.5, None, "ü"]}, "blob": "x" * 1000}

    result = await client.request("echo", payload, soon(10))

    assert result == {"echo": payload, "pid": worker.pid}


async def test_many_requests_in_flight_get_their_own_replies(
    workers: Workers, client: TaskClient
) -> None:
    """Replies come back in another order than the requests went out (each sleeps a random
    time); each request still gets its own."""
    workers.start(broker_concurrency=32)
    rng = random.Random(7)
    tags = [f"r{i}" for i in range(40)]

    results = await asyncio.gather(
        *(
            client.request("sleep", {"tag": tag, "seconds": rng.uniform(0, 0.3)}, soon(20))
            for tag in tags
        )
    )

    assert [result["tag"] for result in results] == tags
    ends = [e["tag"] for e in workers.events() if e["event"] == "end"]
    assert sorted(ends) == sorted(tags)
    assert ends != tags


async def test_two_workers_share_the_load(workers: Workers, client: TaskClient) -> None:
    first = workers.start(broker_concurrency=2)
    second = workers.start(broker_concurrency=2)

    results = await asyncio.gather(
        *(client.request("sleep", {"tag": f"s{i}", "seconds": 0.4}, soon(20)) for i in range(8))
    )

    by_pid = [result["pid"] for result in results]
    assert {first.pid, second.pid} == set(by_pid)
    assert by_pid.count(first.pid) >= 2
    assert by_pid.count(second.pid) >= 2


async def test_a_worker_killed_mid_task_loses_nothing(workers: Workers, client: TaskClient) -> None:
    """SIGKILL the worker running a task: after the visibility timeout another worker runs it,
    and the request gets its answer within its deadline."""
    one = workers.start()
    other = workers.start()
    request = asyncio.create_task(
        client.request("sleep", {"tag": "survivor", "seconds": 1.0}, soon(15))
    )

    running = await wait_until_started(workers, "survivor")
    victim, survivor = (one, other) if running == one.pid else (other, one)
    workers.kill(victim)
    killed_at = time.monotonic()
    result = await request

    assert result == {"tag": "survivor", "pid": survivor.pid}
    assert started(workers, "survivor") == [victim.pid, survivor.pid]
    waited = time.monotonic() - killed_at
    assert 1.0 <= waited < 8, waited  # the visibility timeout (1 s), then 1 s of sleep


async def test_workers_joining_while_a_task_runs_do_not_count_as_failed_deliveries(
    workers: Workers, client: TaskClient, broker: Broker, settings: PipelineSettings
) -> None:
    """More workers join than BROKER_MAX_ATTEMPTS (2) while a task runs. On Kafka each join
    rebalances the group, and a partition that moves takes its running task along to be run
    again; no worker died, so that is not a failed delivery: the task is answered, not
    dead-lettered."""
    workers.start()
    request = asyncio.create_task(
        client.request("sleep", {"tag": "long", "seconds": 5.0}, soon(30))
    )
    await wait_until_started(workers, "long")
    for _ in range(3):
        workers.start()

    result = await request

    assert result["tag"] == "long"
    assert await broker.dead_letters(settings.broker_prefix) == []


async def test_a_passed_deadline_times_out_on_time_and_the_task_never_runs(
    workers: Workers, client: TaskClient
) -> None:
    began = time.monotonic()
    with pytest.raises(TaskTimeout) as caught:
        await client.request("sleep", {"tag": "late", "seconds": 0}, soon(0.5))
    took = time.monotonic() - began

    assert 0.45 <= took < 0.8, took
    assert caught.value.status == 504
    assert caught.value.body()["error"]["code"] == "task_timeout"

    workers.start()  # only now: the expired task is first in its queue
    assert (await client.request("echo", {"tag": "after"}, soon(10)))["echo"] == {"tag": "after"}
    await asyncio.sleep(0.5)
    assert started(workers, "late") == []


async def test_a_task_that_kills_its_workers_is_dead_lettered(
    workers: Workers, client: TaskClient, broker: Broker, settings: PipelineSettings
) -> None:
    """BROKER_MAX_ATTEMPTS (2) workers die running it; the next delivery goes to the dead
    letters, with the reason, and the requester is answered with an error at once."""
    workers.start()
    done = asyncio.Event()

    async def keep_one_worker() -> None:
        while not done.is_set():
            if all(process.poll() is not None for process in workers.running):
                workers.start(ready=False)  # it may die of the task before it says so
            await asyncio.sleep(0.05)

    keeper = asyncio.create_task(keep_one_worker())
    began = time.monotonic()
    try:
        with pytest.raises(TaskDeadLettered) as caught:
            await client.request("crash", {"tag": "poison"}, soon(60))
    finally:
        done.set()
        await keeper

    assert time.monotonic() - began < 30
    assert len(started(workers, "poison")) == settings.broker_max_attempts, workers.events()
    assert caught.value.status == 500
    assert "after 2 deliveries" in caught.value.message
    [letter] = await broker.dead_letters(settings.broker_prefix)
    assert Task.decode(letter.body).payload == {"tag": "poison"}
    assert letter.headers[DELIVERIES] == "2"
    assert "stopped without answering" in letter.headers[DEAD_REASON]
    assert (await client.request("echo", {}, soon(10)))["echo"] == {}


async def test_an_unreadable_task_is_dead_lettered_and_its_requester_told(
    workers: Workers, broker: Broker, settings: PipelineSettings
) -> None:
    """A body that is no task: given back and redelivered until BROKER_MAX_ATTEMPTS, then
    dead-lettered; the reply address in its headers gets the error."""
    workers.start()
    requester = backend_for(settings)
    address = requester.reply_address("test")
    replies: asyncio.Queue[Reply] = asyncio.Queue()

    async def receive(body: bytes) -> None:
        replies.put_nowait(Reply.decode(body))

    requester.on_replies(address, receive)
    await requester.start()
    try:
        await requester.publish_task(b"{not json", "poison-1", address)
        reply = await asyncio.wait_for(replies.get(), 20)
    finally:
        await requester.stop()

    assert reply.id == "poison-1"
    assert reply.error is not None
    assert reply.error["code"] == "task_dead_lettered"
    [letter] = await broker.dead_letters(settings.broker_prefix)
    assert letter.body == b"{not json"
    assert letter.headers[DEAD_REASON].startswith("cannot be read: not JSON")
    assert letter.headers[DELIVERIES] == str(settings.broker_max_attempts)


@pytest.mark.parametrize(
    ("error", "kind", "status", "code"),
    [
        ("invalid", InvalidRequest, 400, "invalid_request"),
        ("upstream_timeout", UpstreamTimeout, 504, "upstream_timeout"),
        ("value", TaskFailed, 500, "task_failed"),
    ],
)
async def test_a_handler_error_is_the_reply(
    workers: Workers, client: TaskClient, error: str, kind: type[Exception], status: int, code: str
) -> None:
    workers.start()
    payload: dict[str, Any] = {"error": error, "message": "no good"}

    with pytest.raises(kind) as caught:
        await client.request("fail", payload, soon(10))

    raised: Any = caught.value
    assert (raised.status, raised.body()["error"]["code"]) == (status, code)
    assert raised.message.endswith("no good")
    if error == "invalid":
        assert raised.param == "question"
    if error == "upstream_timeout":
        assert (raised.provider, raised.message) == ("ollama", "ollama: no good")
    if error == "value":
        assert raised.message == "ValueError: no good"
    assert len(started(workers, None)) == 1  # not retried
    assert (await client.request("echo", {}, soon(10)))["echo"] == {}  # the worker goes on


async def test_sigterm_finishes_the_running_task_and_takes_no_new_one(
    workers: Workers, client: TaskClient
) -> None:
    worker = workers.start()
    running = asyncio.create_task(client.request("sleep", {"tag": "last", "seconds": 1}, soon(15)))
    await wait_until_started(workers, "last")

    worker.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    later = asyncio.create_task(client.request("echo", {"tag": "later"}, soon(20)))

    assert await running == {"tag": "last", "pid": worker.pid}
    assert await asyncio.to_thread(worker.wait, 10) == 0
    assert not later.done()
    successor = workers.start()
    assert (await later)["pid"] == successor.pid
    assert worker.pid not in started(workers, "later")


@pytest.mark.parametrize("scheme", ["redis", "kafka"])
async def test_a_broker_that_cannot_be_reached_is_broker_unavailable(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}"  # nothing listens there
    client = TaskClient(load_settings(_env_file=None, broker_url=url).pipelines)

    with pytest.raises(BrokerUnavailable) as caught:
        await client.open()

    assert caught.value.status == 503
    assert "cannot reach the broker" in caught.value.message
