"""Kafka: the tasks in a topic read by one consumer group, each worker its members; replies on
one topic that every gateway process reads whole (each keeps the replies it waits for).

Kafka keeps no per-message state: a worker commits a partition's offset after each task, and a
worker that dies mid-task leaves its offset uncommitted, so after the group's rebalance (when
its session, BROKER_VISIBILITY_TIMEOUT but at least 6 s, has timed out) another member reads the
task again. Deliveries are not counted, so a task that kills its workers is not dead-lettered
here, and one that cannot be read is dead-lettered at once. A worker runs one task at a time per
partition: the task topic wants at least as many partitions as all workers' BROKER_CONCURRENCY.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from app.broker.backend import ReplyCallback, TaskCallback
from app.broker.envelope import REPLY_TO
from app.config import PipelineSettings

log = logging.getLogger(__name__)

_MIN_SESSION_MS = 6000
"""Kafka brokers refuse a shorter session (group.min.session.timeout.ms)."""


class _Delivery:
    __slots__ = ("_msg", "body", "correlation_id", "reply_to")

    def __init__(self, msg: KafkaMessage) -> None:
        self._msg = msg
        self.body = msg.body
        self.correlation_id = msg.correlation_id
        self.reply_to = str(msg.headers.get(REPLY_TO, ""))

    async def hold(self) -> int:
        return 1

    async def ack(self) -> None:
        await self._msg.ack()

    async def retry(self) -> None:
        await self._msg.nack()


class Kafka:
    counts_retries = False

    def __init__(self, settings: PipelineSettings) -> None:
        prefix = settings.broker_prefix
        self._settings = settings
        self._tasks = f"{prefix}.tasks"
        self._group = f"{prefix}.workers"
        self._dead = f"{prefix}.dead"
        self._replies = f"{prefix}.replies"
        self.broker = KafkaBroker(
            settings.broker_url.removeprefix("kafka://").rstrip("/"),
            graceful_timeout=settings.broker_shutdown_grace,
            logger=log,
            log_level=logging.DEBUG,
        )

    def reply_address(self, client: str) -> str:
        return self._replies

    def on_replies(self, address: str, callback: ReplyCallback) -> None:
        async def receive(msg: KafkaMessage) -> None:
            await callback(msg.body)

        self.broker.subscriber(address, auto_offset_reset="latest", no_reply=True)(receive)

    def on_tasks(self, callback: TaskCallback) -> None:
        session_ms = max(_MIN_SESSION_MS, round(self._settings.broker_visibility_timeout * 1000))

        async def receive(msg: KafkaMessage) -> None:
            await callback(_Delivery(msg))

        self.broker.subscriber(
            self._tasks,
            group_id=self._group,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=session_ms // 3,
            ack_policy=AckPolicy.MANUAL,
            no_reply=True,
            max_workers=self._settings.broker_concurrency,
        )(receive)

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def publish_task(self, body: bytes, correlation_id: str, reply_to: str) -> None:
        await self.broker.publish(
            body, self._tasks, correlation_id=correlation_id, headers={REPLY_TO: reply_to}
        )

    async def publish_reply(self, address: str, body: bytes) -> None:
        await self.broker.publish(body, address)

    async def publish_dead(self, body: bytes, correlation_id: str, headers: dict[str, str]) -> None:
        await self.broker.publish(body, self._dead, correlation_id=correlation_id, headers=headers)
