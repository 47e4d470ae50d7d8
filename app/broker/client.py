"""The gateway's side: `TaskClient` publishes tasks and waits for their replies, which come on
this process's own reply address and are matched to their requests by correlation id. Without
BROKER_URL there is none: the pipelines run their steps in the gateway's process."""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import Any, Self

from app.broker.backend import process_name
from app.broker.brokers import backend_for
from app.broker.envelope import Reply, Task
from app.config import PipelineSettings
from app.errors import BrokerUnavailable, TaskTimeout
from app.ids import new_id

log = logging.getLogger(__name__)


class TaskClient:
    """Opened once per process (`open`, `close`, or `async with`); any number of requests may
    be in flight at once."""

    def __init__(self, settings: PipelineSettings) -> None:
        self._backend = backend_for(settings)
        self._address = self._backend.reply_address(process_name())
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._backend.on_replies(self._address, self._receive)

    async def open(self) -> None:
        """Connect; BrokerUnavailable when the broker cannot be reached."""
        try:
            await self._backend.start()
        except Exception as exc:
            await self._backend.stop()
            raise BrokerUnavailable(f"cannot reach the broker of BROKER_URL: {exc}") from exc

    async def close(self) -> None:
        await self._backend.stop()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrokerUnavailable("the task client was closed"))

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def request(self, kind: str, payload: dict[str, Any], deadline: float) -> dict[str, Any]:
        """The result of the `kind` handler on `payload` (JSON-able), run by a worker; its
        error raised as the GatewayError it was (TaskFailed for any other exception).
        TaskTimeout when no reply has come by `deadline` (`time.time()`), BrokerUnavailable
        when the broker would not take the task."""
        remaining = deadline - time.time()
        if remaining <= 0:
            raise TaskTimeout(f"the {kind} task's deadline had passed before it was sent")
        task = Task(new_id("task-"), kind, payload, deadline, self._address)
        body = task.encode()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[task.id] = future
        try:
            async with asyncio.timeout(remaining):
                try:
                    await self._backend.publish_task(body, task.id, self._address)
                except Exception as exc:
                    message = f"the broker did not take the {kind} task: {exc}"
                    raise BrokerUnavailable(message) from exc
                reply = await future
        except TimeoutError:
            message = f"no worker answered the {kind} task within {remaining:.3g}s"
            raise TaskTimeout(message) from None
        finally:
            del self._waiting[task.id]
        return reply.outcome()

    async def _receive(self, body: bytes) -> None:
        try:
            reply = Reply.decode(body)
        except ValueError as exc:
            log.warning("a reply that cannot be read was dropped: %s", exc)
            return
        future = self._waiting.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply)
