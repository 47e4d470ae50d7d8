"""NATS JetStream: the tasks in a work-queue stream read through one durable pull consumer that
every worker shares; replies on a plain NATS subject per gateway process.

The server redelivers a task left unacknowledged for its ack wait (BROKER_VISIBILITY_TIMEOUT)
and counts the deliveries; `hold` marks the task in progress, which restarts that wait.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import ConsumerConfig, RetentionPolicy

from app.broker.backend import ReplyCallback, TaskCallback
from app.broker.envelope import REPLY_TO
from app.config import PipelineSettings

log = logging.getLogger(__name__)

DEAD_MAX_MSGS = 100_000
"""The dead-letter stream keeps this many, the oldest discarded."""


class _Delivery:
    __slots__ = ("_msg", "body", "correlation_id", "reply_to")

    def __init__(self, msg: NatsMessage) -> None:
        self._msg = msg
        self.body = msg.body
        self.correlation_id = msg.correlation_id
        self.reply_to = str(msg.headers.get(REPLY_TO, ""))

    async def hold(self) -> int:
        await self._msg.in_progress()
        return int(self._msg.raw_message.metadata.num_delivered or 1)

    async def ack(self) -> None:
        await self._msg.ack()

    async def retry(self) -> None:
        await self._msg.nack()


class NatsJetStream:
    def __init__(self, settings: PipelineSettings) -> None:
        prefix = settings.broker_prefix
        self._settings = settings
        self._prefix = prefix
        self._tasks = f"{prefix}.tasks"
        self._dead = f"{prefix}.dead"
        self._tasks_stream = JStream(
            f"{prefix}-tasks", subjects=[self._tasks], retention=RetentionPolicy.WORK_QUEUE
        )
        self._dead_stream = JStream(f"{prefix}-dead", subjects=[self._dead], max_msgs=DEAD_MAX_MSGS)
        self.broker = NatsBroker(
            settings.broker_url,
            graceful_timeout=settings.broker_shutdown_grace,
            logger=log,
            log_level=logging.DEBUG,
        )
        # Declared at start by whichever comes first, gateway or worker.
        self.broker.publisher(self._tasks, stream=self._tasks_stream)
        self.broker.publisher(self._dead, stream=self._dead_stream)

    def reply_address(self, client: str) -> str:
        return f"{self._prefix}.reply.{client}"

    def on_replies(self, address: str, callback: ReplyCallback) -> None:
        async def receive(msg: NatsMessage) -> None:
            await callback(msg.body)

        self.broker.subscriber(address, no_reply=True)(receive)

    def on_tasks(self, callback: TaskCallback) -> None:
        async def receive(msg: NatsMessage) -> None:
            await callback(_Delivery(msg))

        self.broker.subscriber(
            self._tasks,
            stream=self._tasks_stream,
            durable=f"{self._prefix}-workers",
            pull_sub=PullSub(batch_size=1, timeout=1.0),
            config=ConsumerConfig(ack_wait=self._settings.broker_visibility_timeout),
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
            body,
            self._tasks,
            stream=self._tasks_stream.name,
            correlation_id=correlation_id,
            headers={REPLY_TO: reply_to},
        )

    async def publish_reply(self, address: str, body: bytes) -> None:
        await self.broker.publish(body, address)

    async def publish_dead(self, body: bytes, correlation_id: str, headers: dict[str, str]) -> None:
        await self.broker.publish(
            body, self._dead, stream=self._dead_stream.name, correlation_id=correlation_id,
            headers=headers,
        )  # fmt: skip
