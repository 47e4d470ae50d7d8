"""What differs between the brokers, behind one interface; `backend_for` picks the one BROKER_URL
names. Each is a FastStream broker with the transport's streams, subjects or topics:

    <prefix>.tasks          the shared task queue, read by every worker as one group
    <prefix>.dead           dead letters: the task's body as sent, the reason in its headers
    <prefix>.reply.<client> a gateway process's replies (Kafka: one <prefix>.replies for all)
    <prefix>.attempts       Kafka only: the deliveries of the tasks in hand, which Kafka does
                            not count
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from app.config import PipelineSettings
from app.ids import new_id


class Delivery(Protocol):
    """One delivery of a task message to this worker."""

    body: bytes
    correlation_id: str
    reply_to: str
    """The reply address from the headers, empty when there is none."""

    async def hold(self) -> int | None:
        """Take or renew this worker's hold on the message for another visibility timeout: the
        deliveries so far (this one included), or None when another worker has it now."""
        ...

    async def ack(self) -> None:
        """Done with: the broker forgets it."""
        ...

    async def retry(self) -> None:
        """Give it back, to be delivered again (and counted) soon."""
        ...


TaskCallback = Callable[[Delivery], Awaitable[None]]
ReplyCallback = Callable[[bytes], Awaitable[None]]


class Backend(Protocol):
    def reply_address(self, client: str) -> str: ...

    def on_replies(self, address: str, callback: ReplyCallback) -> None:
        """Call `callback` with each reply sent to `address` (before `start`)."""
        ...

    def on_tasks(self, callback: TaskCallback) -> None:
        """Call `callback` with each task this worker is given (before `start`); at most
        BROKER_CONCURRENCY at once."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Take no more messages, give the callbacks running up to BROKER_SHUTDOWN_GRACE
        seconds, and disconnect."""
        ...

    async def publish_task(self, body: bytes, correlation_id: str, reply_to: str) -> None: ...

    async def publish_reply(self, address: str, body: bytes) -> None: ...

    async def publish_dead(
        self, body: bytes, correlation_id: str, headers: dict[str, str]
    ) -> None: ...


def process_name() -> str:
    """This process's name among the workers and gateways: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{new_id(hex_digits=6)}"


def shown_url(settings: PipelineSettings) -> str:
    """BROKER_URL without its credentials, for the log."""
    scheme, _, rest = settings.broker_url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
