"""The worker side: `serve` takes tasks from the broker until stopped, runs each kind's handler,
publishes the reply to the requester and only then acknowledges the task.

Per delivery: a task another worker has taken meanwhile is left alone; one past its deadline is
acknowledged and dropped (its requester has given up); one delivered more than
BROKER_MAX_ATTEMPTS times (its workers died on it), or that cannot be read after as many, goes
to the dead letters and its requester, when known, gets a TaskDeadLettered reply at once. While
a handler runs its hold on the task is renewed every third of the visibility timeout, and it is
cancelled at the task's deadline. A handler's error is its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from app.broker.backend import Backend, Delivery, shown_url
from app.broker.brokers import backend_for
from app.broker.envelope import DEAD_REASON, DELIVERIES, REPLY_TO, Reply, Task
from app.config import PipelineSettings, load_settings
from app.errors import GatewayError, TaskDeadLettered, TaskFailed

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve(
    settings: PipelineSettings | str,
    handlers: Mapping[str, Handler],
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], object] | None = None,
) -> None:
    """Run `handlers` (by task kind) for the tasks of BROKER_URL (`settings`, or a URL with the
    other settings from the environment) until `stop` is set or SIGTERM or SIGINT comes; then
    take no new tasks and give those running BROKER_SHUTDOWN_GRACE seconds to finish.
    `on_ready` is called once the worker is consuming."""
    if isinstance(settings, str):
        settings = load_settings(broker_url=settings).pipelines
    if not settings.broker_url:
        raise ValueError("a worker needs BROKER_URL")
    backend = backend_for(settings)
    backend.on_tasks(_Runner(backend, handlers, settings).deliver)
    stop = stop or asyncio.Event()
    with _stop_on_signals(stop):
        try:
            await backend.start()
            log.info(
                "worker consuming %s tasks from %s", settings.broker_prefix, shown_url(settings)
            )
            if on_ready is not None:
                on_ready()
            await stop.wait()
            log.info("worker stopping: no new tasks, finishing those running")
        finally:
            await backend.stop()


class _Runner:
    def __init__(
        self, backend: Backend, handlers: Mapping[str, Handler], settings: PipelineSettings
    ) -> None:
        self._backend = backend
        self._handlers = dict(handlers)
        self._max_attempts = settings.broker_max_attempts
        self._renew_every = settings.broker_visibility_timeout / 3

    async def deliver(self, delivery: Delivery) -> None:
        deliveries = await delivery.hold()
        if deliveries is None:
            return
        try:
            task = Task.decode(delivery.body)
        except ValueError as exc:
            if deliveries < self._max_attempts:
                log.warning("task %s cannot be read (%s); given back", delivery.correlation_id, exc)
                await delivery.retry()
            else:
                await self._dead(delivery, f"cannot be read: {exc}", deliveries)
            return
        deliveries = max(deliveries, task.attempt)
        if deliveries > self._max_attempts:
            reason = f"its worker stopped without answering {deliveries - 1} times"
            await self._dead(delivery, reason, deliveries - 1)
            return
        remaining = task.deadline - time.time()
        if remaining <= 0:
            log.info("task %s (%s) expired before it ran; dropped", task.id, task.kind)
            await delivery.ack()
            return
        reply = await self._run(task, delivery, remaining)
        if reply is None:
            log.info("task %s (%s) ran past its deadline; dropped", task.id, task.kind)
        else:
            await self._backend.publish_reply(task.reply_to, reply)
        await delivery.ack()

    async def _run(self, task: Task, delivery: Delivery, remaining: float) -> bytes | None:
        """The encoded reply; None when the deadline came first."""
        handler = self._handlers.get(task.kind)
        if handler is None:
            unknown = TaskFailed(f"no handler for task kind {task.kind!r}")
            return Reply.failed(task.id, unknown).encode()
        renewer = asyncio.create_task(self._renew(delivery))
        deadline = asyncio.timeout(remaining)
        try:
            async with deadline:
                result: object = await handler(task.payload)
            if not isinstance(result, dict):
                raise TypeError(f"the handler returned a {type(result).__name__}, not a dict")
            return Reply(task.id, result=result).encode()
        except TimeoutError as exc:
            if deadline.expired():
                return None
            log.exception("task %s (%s) failed", task.id, task.kind)
            return Reply.failed(task.id, exc).encode()
        except GatewayError as exc:
            return Reply.failed(task.id, exc).encode()
        except Exception as exc:
            log.exception("task %s (%s) failed", task.id, task.kind)
            return Reply.failed(task.id, exc).encode()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(self._renew_every)
            try:
                await delivery.hold()
            except Exception:  # the broker answers again later, or the task is redelivered
                log.warning("could not renew the hold on task %s", delivery.correlation_id)

    async def _dead(self, delivery: Delivery, reason: str, deliveries: int) -> None:
        log.error("task %s dead-lettered: %s", delivery.correlation_id, reason)
        headers = {DEAD_REASON: reason, DELIVERIES: str(deliveries), REPLY_TO: delivery.reply_to}
        await self._backend.publish_dead(delivery.body, delivery.correlation_id, headers)
        if delivery.reply_to and delivery.correlation_id:
            error = TaskDeadLettered(f"given up after {deliveries} deliveries: {reason}")
            reply = Reply.failed(delivery.correlation_id, error).encode()
            await self._backend.publish_reply(delivery.reply_to, reply)
        await delivery.ack()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (ValueError, RuntimeError):  # not the main thread
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
