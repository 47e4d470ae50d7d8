"""One generation at a time on a local model, users' turns first.

A background task (OpenWebUI's title, tags, follow-ups) waits while any user's turn runs or
waits; a user's turn that arrives while a background task generates stops that task, which then
fails as shed. So a user is never stuck behind a background task, and tasks run when the model
would otherwise be idle.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass(slots=True)
class Ticket:
    """One generation's place: `stop` ends it; `shed` says a user's turn took its place."""

    background: bool
    stop: threading.Event = field(default_factory=threading.Event)
    shed: bool = False


@dataclass(slots=True)
class _Waiter:
    ticket: Ticket
    granted: asyncio.Future[None]


class Turns:
    def __init__(self) -> None:
        self._running: Ticket | None = None
        self._waiting: list[_Waiter] = []

    @property
    def idle(self) -> bool:
        return self._running is None and not self._waiting

    async def acquire(self, ticket: Ticket) -> None:
        """Wait for the model; a background ticket may be shed later, while it generates."""
        running = self._running
        if not ticket.background and running is not None and running.background:
            running.shed = True
            running.stop.set()
        if self.idle:
            self._running = ticket
            return
        waiter = _Waiter(ticket, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            await waiter.granted
        except BaseException:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self.release()  # granted as it was cancelled: hand the model on
            raise

    def release(self) -> None:
        """The generation is over: the first waiting user's turn goes next, else the first
        waiting task."""
        self._running = None
        if not self._waiting:
            return
        waiter = next((w for w in self._waiting if not w.ticket.background), self._waiting[0])
        self._waiting.remove(waiter)
        self._running = waiter.ticket
        waiter.granted.set_result(None)
