"""Redis Streams: the tasks in a stream read by one consumer group, each worker a consumer of its
own; replies on a pub/sub channel per gateway process.

A worker reads new tasks with XREADGROUP and, beside it, claims with XAUTOCLAIM those left
unacknowledged for BROKER_VISIBILITY_TIMEOUT (their worker died or hung). Redis counts each
delivery in the group's pending entries; `hold` reads that count and resets the entry's idle
time, but only while the entry is still this worker's (a task that waited in this worker's
queue past its timeout may have been claimed by another). An acknowledged task is deleted.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.redis import RedisBroker, RedisChannelMessage, RedisStreamMessage, StreamSub
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.broker.backend import ReplyCallback, TaskCallback, process_name
from app.broker.envelope import REPLY_TO
from app.config import PipelineSettings

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 1024
"""redis-py's pool refuses a command past 100 connections by default; each request in flight may
hold one while it publishes, and each task running in a worker while it replies."""
DEAD_MAXLEN = 100_000
"""The dead-letter stream keeps about this many, the oldest trimmed."""

# KEYS[1] stream; ARGV group, consumer, entry id. The deliveries so far, 0 if not ours.
_HOLD = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return p[1][4]
"""
# KEYS[1] stream; ARGV group, consumer. Removes the consumer unless it still holds entries.
_LEAVE = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


class _Delivery:
    __slots__ = ("_client", "_id", "_owner", "_visibility_ms", "body", "correlation_id", "reply_to")

    def __init__(
        self,
        msg: RedisStreamMessage,
        client: Redis,
        owner: tuple[str, str, str],
        visibility_ms: int,
    ) -> None:
        self._client = client
        self._owner = owner  # stream, group, consumer
        self._visibility_ms = visibility_ms
        self._id: bytes = msg.raw_message["message_ids"][0]
        self.body = msg.body
        self.correlation_id = msg.correlation_id
        self.reply_to = str(msg.headers.get(REPLY_TO, ""))

    async def hold(self) -> int | None:
        stream, group, consumer = self._owner
        count = await self._client.eval(_HOLD, 1, stream, group, consumer, self._id)
        return int(count) or None

    async def ack(self) -> None:
        stream, group, _ = self._owner
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xack(stream, group, self._id)
            pipe.xdel(stream, self._id)
            await pipe.execute()

    async def retry(self) -> None:
        """Made idle for the whole visibility timeout: the next XAUTOCLAIM takes it."""
        stream, group, consumer = self._owner
        await self._client.xclaim(
            stream, group, consumer, 0, [self._id], idle=self._visibility_ms, justid=True
        )


class RedisStreams:
    def __init__(self, settings: PipelineSettings) -> None:
        prefix = settings.broker_prefix
        self._settings = settings
        self._tasks = f"{prefix}.tasks"
        self._group = f"{prefix}.workers"
        self._dead = f"{prefix}.dead"
        self._prefix = prefix
        self._consumer = ""
        self._started = False
        self.broker = RedisBroker(
            settings.broker_url,
            graceful_timeout=settings.broker_shutdown_grace,
            max_connections=MAX_CONNECTIONS,
            logger=log,
            log_level=logging.DEBUG,
        )

    def reply_address(self, client: str) -> str:
        return f"{self._prefix}.reply.{client}"

    def on_replies(self, address: str, callback: ReplyCallback) -> None:
        async def receive(msg: RedisChannelMessage) -> None:
            await callback(msg.body)

        self.broker.subscriber(channel=address, no_reply=True)(receive)

    def on_tasks(self, callback: TaskCallback) -> None:
        self._consumer = consumer = process_name()
        visibility_ms = round(self._settings.broker_visibility_timeout * 1000)
        owner = (self._tasks, self._group, consumer)
        fresh = StreamSub(self._tasks, group=self._group, consumer=consumer, max_records=1)
        stale = StreamSub(
            self._tasks,
            group=self._group,
            consumer=consumer,
            min_idle_time=visibility_ms,
            polling_interval=max(50, visibility_ms // 4),
        )

        async def receive(msg: RedisStreamMessage) -> None:
            await callback(_Delivery(msg, await self.broker.connect(), owner, visibility_ms))

        for sub in (fresh, stale):
            self.broker.subscriber(
                stream=sub,
                ack_policy=AckPolicy.MANUAL,
                no_reply=True,
                max_workers=self._settings.broker_concurrency,
            )(receive)

    async def start(self) -> None:
        client = await self.broker.connect()
        try:  # from the stream's start: tasks sent before any worker came are not skipped
            await client.xgroup_create(self._tasks, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self.broker.start()
        self._started = True

    async def stop(self) -> None:
        for subscriber in self.broker.subscribers:
            await subscriber.stop()
        if self._started and self._consumer:
            client = await self.broker.connect()
            await client.eval(_LEAVE, 1, self._tasks, self._group, self._consumer)
        await self.broker.stop()

    async def publish_task(self, body: bytes, correlation_id: str, reply_to: str) -> None:
        await self.broker.publish(
            body, stream=self._tasks, correlation_id=correlation_id, headers={REPLY_TO: reply_to}
        )

    async def publish_reply(self, address: str, body: bytes) -> None:
        await self.broker.publish(body, channel=address)

    async def publish_dead(self, body: bytes, correlation_id: str, headers: dict[str, str]) -> None:
        await self.broker.publish(
            body, stream=self._dead, correlation_id=correlation_id, headers=headers,
            maxlen=DEAD_MAXLEN,
        )  # fmt: skip
