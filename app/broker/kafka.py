"""Kafka: the tasks in a topic read by one consumer group, each worker a member of it; replies on
one topic that every gateway process reads whole (each keeps the replies it waits for).

A worker runs up to BROKER_CONCURRENCY tasks at once, one per partition: a partition is paused
while its task runs, and the task's offset is committed only once it is answered. So a worker
that dies mid-task leaves it uncommitted, and after the group's rebalance (when the worker's
session, BROKER_VISIBILITY_TIMEOUT, has timed out) another worker reads it again. A Kafka
broker refuses sessions outside its group.min/max.session.timeout.ms (6 s to 30 min by
default); a worker then logs that error and never starts consuming.

Kafka keeps no count of a message's deliveries, so the workers keep one: before running a task
a worker writes (offset, deliveries so far) to the same partition of the attempts topic, and a
worker given a partition reads that partition's last record there. A worker that loses a
partition to a rebalance while a task of it runs writes one delivery fewer (it runs on, and the
partition's new holder runs it again), so that only deliveries whose worker died or hung count.

The topics are created at start: tasks with TASK_PARTITIONS partitions (attempts with as many
as tasks has), tasks published round-robin over them and the partitions dealt round-robin to the
workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, TopicAlreadyExistsError, for_code
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from app.broker.backend import ReplyCallback, TaskCallback
from app.broker.envelope import REPLY_TO
from app.config import PipelineSettings

log = logging.getLogger(__name__)

TASK_PARTITIONS = 64
"""Partitions of the task topic when this creates it: at most this many tasks run at once over
all workers; more wait behind those of their partition."""
FETCH_MAX_WAIT_MS = 100
"""How long a read waits on the broker for messages to come. Kafka answers a waiting read at
once when one comes; some Kafka-protocol brokers (Tansu) only at the end of the wait, so that a
task or a reply waits half of it on average there."""
MAX_POLL_INTERVAL_MS = 24 * 3600 * 1000
"""A worker whose BROKER_CONCURRENCY slots are all taken reads nothing until one frees; the
group would take that for a hung worker after Kafka's default 5 min, while the session (the
heartbeats) already tells one."""


class _RoundRobin:
    """A partitioner spreading messages evenly over a topic's partitions (ours carry no key)."""

    def __init__(self) -> None:
        self._next = itertools.count()

    def __call__(self, key: bytes | None, every: Sequence[int], available: Sequence[int]) -> int:
        partitions = sorted(available or every)
        return partitions[next(self._next) % len(partitions)]


class _Delivery:
    __slots__ = (
        "_attempts", "_consumer", "_record", "answered", "body", "correlation_id", "deliveries",
        "partition", "reply_to", "revoked",
    )  # fmt: skip

    def __init__(self, msg: KafkaMessage, attempts: _Attempts) -> None:
        assert not isinstance(msg.raw_message, tuple)  # one at a time, not batches
        self._attempts = attempts
        self._record = msg.raw_message
        self._consumer: Any = msg.consumer
        self.partition = TopicPartition(self._record.topic, self._record.partition)
        self.deliveries: int | None = None
        """Counted by the first `hold`."""
        self.body = msg.body
        self.correlation_id = msg.correlation_id
        self.reply_to = str(msg.headers.get(REPLY_TO, ""))
        self.revoked = False
        """Its partition went to a rebalance: nothing more is done to it."""
        self.answered = False

    @property
    def offset(self) -> int:
        offset: int = self._record.offset
        return offset

    def holds(self) -> bool:
        return not self.revoked and self.partition in self._consumer.assignment()

    async def hold(self) -> int | None:
        """The partition is held by the worker's session (its heartbeats), not the message."""
        if not self.holds():
            return None
        if self.deliveries is None:
            self.deliveries = await self._attempts.begin(self.partition.partition, self.offset)
        return self.deliveries

    async def ack(self) -> None:
        self.answered = True
        if not self.holds():
            return
        try:
            await self._consumer.commit({self.partition: self.offset + 1})
        except CommitFailedError:  # a rebalance came first: its new holder runs it again
            log.warning("task %s was answered after its partition moved", self.correlation_id)

    async def retry(self) -> None:
        """Nothing to do: unanswered, it is read again once `release`d."""

    def pause(self) -> None:
        self._consumer.pause(self.partition)

    def release(self, *, resume: bool = True) -> None:
        """Its partition read on from the next task, or from this one again when unanswered
        (even if a rebalance gave the partition back meanwhile, from its committed offset)."""
        if self.holds():
            self._consumer.seek(self.partition, self.offset + 1 if self.answered else self.offset)
            if resume:
                self._consumer.resume(self.partition)


class _Attempts:
    """The deliveries begun of each partition's task in hand, as recorded in the attempts topic
    (one record a delivery, keyed and partitioned as the task)."""

    def __init__(self, broker: KafkaBroker, topic: str, bootstrap: str) -> None:
        self._broker = broker
        self._topic = topic
        self._reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )  # fmt: skip
        self._reading = asyncio.Lock()
        self._known: dict[int, tuple[int, int]] = {}
        """Of each partition held since, the last (offset, deliveries) recorded."""

    async def start(self) -> None:
        await self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()

    def forget(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            self._known.pop(partition.partition, None)

    async def begin(self, partition: int, offset: int) -> int:
        """Record another delivery of the task at `offset`: the deliveries so far."""
        known = self._known.get(partition)
        if known is None:
            known = await self._last(partition)
        deliveries = known[1] + 1 if known[0] == offset else 1
        await self.record(partition, offset, deliveries)
        return deliveries

    async def record(self, partition: int, offset: int, deliveries: int) -> None:
        await self._broker.publish(
            f"{offset} {deliveries}".encode(), self._topic, partition=partition,
            key=str(partition).encode(),
        )  # fmt: skip
        self._known[partition] = (offset, deliveries)

    async def _last(self, partition: int) -> tuple[int, int]:
        """The partition's last record: (offset, deliveries); (-1, 0) when there is none."""
        where = TopicPartition(self._topic, partition)
        first = (await self._reader.beginning_offsets([where]))[where]
        end = (await self._reader.end_offsets([where]))[where]
        if end <= first:  # none yet, or none kept
            return -1, 0
        async with self._reading:
            self._reader.assign([where])
            self._reader.seek(where, end - 1)
            try:
                record = await self._reader.getone(where)
            finally:
                self._reader.unsubscribe()
        offset, deliveries = record.value.split()
        return int(offset), int(deliveries)


async def _create(admin: AIOKafkaAdminClient, topic: str, partitions: int) -> None:
    response = await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    for _, code, *_ in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            raise for_code(code)(f"cannot create {topic}")


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> int:
    [described] = await admin.describe_topics([topic])
    return len(described["partitions"])


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, kafka: Kafka) -> None:
        self._kafka = kafka

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._kafka.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._kafka.assigned(assigned)


class Kafka:
    def __init__(self, settings: PipelineSettings) -> None:
        prefix = settings.broker_prefix
        self._settings = settings
        self._bootstrap = settings.broker_url.removeprefix("kafka://").rstrip("/")
        self._tasks = f"{prefix}.tasks"
        self._attempts_topic = f"{prefix}.attempts"
        self._group = f"{prefix}.workers"
        self._dead = f"{prefix}.dead"
        self._replies = f"{prefix}.replies"
        self._reply_subscribers: list[Any] = []
        self._attempts: _Attempts | None = None
        self._slots = asyncio.Semaphore(settings.broker_concurrency)
        self._held: dict[TopicPartition, _Delivery] = {}
        """The tasks in hand: running, or waiting for one of the BROKER_CONCURRENCY slots."""
        self._runs: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self.broker = KafkaBroker(
            self._bootstrap,
            graceful_timeout=settings.broker_shutdown_grace,
            partitioner=_RoundRobin(),
            logger=log,
            log_level=logging.DEBUG,
        )

    def reply_address(self, client: str) -> str:
        return self._replies

    def on_replies(self, address: str, callback: ReplyCallback) -> None:
        async def receive(msg: KafkaMessage) -> None:
            await callback(msg.body)

        subscriber = self.broker.subscriber(
            address, auto_offset_reset="latest", fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            no_reply=True,
        )  # fmt: skip
        subscriber(receive)
        self._reply_subscribers.append(subscriber)

    def on_tasks(self, callback: TaskCallback) -> None:
        session_ms = round(self._settings.broker_visibility_timeout * 1000)
        self._attempts = attempts = _Attempts(self.broker, self._attempts_topic, self._bootstrap)

        async def receive(msg: KafkaMessage) -> None:
            delivery = _Delivery(msg, attempts)
            delivery.pause()  # its partition's next task waits for this one
            if self._stopping:  # left to whoever gets the partition next
                delivery.release(resume=False)
                return
            self._held[delivery.partition] = delivery
            self._idle.clear()
            await self._slots.acquire()
            run = asyncio.create_task(self._run(delivery, callback))
            self._runs.add(run)
            run.add_done_callback(self._runs.discard)

        self.broker.subscriber(
            self._tasks,
            group_id=self._group,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(1, session_ms // 4),
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            partition_assignment_strategy=(RoundRobinPartitionAssignor,),
            listener=_Rebalances(self),
            ack_policy=AckPolicy.MANUAL,
            no_reply=True,
        )(receive)

    async def _run(self, delivery: _Delivery, callback: TaskCallback) -> None:
        try:
            if not self._stopping:
                await callback(delivery)
        except Exception:
            log.exception("task %s failed in the transport; read again", delivery.correlation_id)
        finally:
            self._slots.release()
            if self._held.get(delivery.partition) is delivery:
                del self._held[delivery.partition]
            if not self._held:
                self._idle.set()
            with contextlib.suppress(Exception):  # its consumer may be stopped
                delivery.release(resume=not self._stopping)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Before a rebalance: the tasks of these partitions in hand are given up, those
        running with one delivery fewer recorded (they run on, and whoever gets the partition
        runs them again)."""
        assert self._attempts is not None
        self._attempts.forget(partitions)
        for partition in partitions:
            delivery = self._held.get(partition)
            if delivery is None:
                continue
            delivery.revoked = True
            if delivery.deliveries is not None:
                with contextlib.suppress(Exception):  # then this delivery counts as failed
                    await self._attempts.record(
                        partition.partition, delivery.offset, delivery.deliveries - 1
                    )

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """After a rebalance: a partition given back to this worker while its task still runs
        waits for it again, and the delivery counts again."""
        assert self._attempts is not None
        running = [
            delivery
            for partition in partitions
            if (delivery := self._held.get(partition)) is not None
            and delivery.deliveries is not None
        ]
        for delivery in running:
            delivery.revoked = False
            delivery.pause()
        for delivery in running:
            assert delivery.deliveries is not None
            await self._attempts.record(
                delivery.partition.partition, delivery.offset, delivery.deliveries
            )

    async def start(self) -> None:
        # The topics first, with a client of this module's own: FastStream leaves the producer
        # it could not start unclosed when the broker cannot be reached.
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        try:
            await admin.start()
            await self._create_topics(admin)
        finally:
            await admin.close()
        if self._attempts is not None:
            await self._attempts.start()
        await self.broker.start()
        for subscriber in self._reply_subscribers:  # from here on no reply is missed
            for partition in subscriber.consumer.assignment():
                await subscriber.consumer.position(partition)

    async def _create_topics(self, admin: AIOKafkaAdminClient) -> None:
        """Those that do not exist yet: attempts (for a worker) with as many partitions as
        tasks has."""
        await _create(admin, self._tasks, TASK_PARTITIONS)
        await _create(admin, self._replies, 1)
        await _create(admin, self._dead, 1)
        if self._attempts is not None:
            partitions = await _partitions(admin, self._tasks)
            await _create(admin, self._attempts_topic, partitions)
            if await _partitions(admin, self._attempts_topic) < partitions:
                message = f"{self._attempts_topic} has fewer partitions than {self._tasks}"
                raise ValueError(message)

    async def stop(self) -> None:
        """The tasks in hand get BROKER_SHUTDOWN_GRACE seconds; those read meanwhile are left
        unread, to whoever gets their partitions."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._settings.broker_shutdown_grace)
        for run in list(self._runs):
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        await self.broker.stop()
        if self._attempts is not None:
            await self._attempts.stop()

    async def publish_task(self, body: bytes, correlation_id: str, reply_to: str) -> None:
        await self.broker.publish(
            body, self._tasks, correlation_id=correlation_id, headers={REPLY_TO: reply_to}
        )

    async def publish_reply(self, address: str, body: bytes) -> None:
        await self.broker.publish(body, address)

    async def publish_dead(self, body: bytes, correlation_id: str, headers: dict[str, str]) -> None:
        await self.broker.publish(body, self._dead, correlation_id=correlation_id, headers=headers)
