"""One generation at a time on a local model, users' turns first.

A background task (OpenWebUI's title, tags, follow-ups) waits while any user's turn runs or
waits; a user's turn that arrives while a background task generates stops that task, which then
fails as shed. So a user is never stuck behind a background task, and tasks run when the model
would otherwise be idle.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass


@dataclass(slots=True)
class _Waiter:
    background: bool
    granted: asyncio.Future[None]


class Turns:
    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[_Waiter] = []
        self._running_task: threading.Event | None = None

    @property
    def idle(self) -> bool:
        return not self._busy and not self._waiting

    async def acquire(self, *, background: bool, shed: threading.Event) -> None:
        """Wait for the model; `shed` is set if this background task must give way later."""
        if not background and self._running_task is not None:
            self._running_task.set()
        if self.idle:
            self._grant(background, shed)
            return
        waiter = _Waiter(background, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            await waiter.granted
        except BaseException:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self.release()  # granted as it was cancelled: hand the model on
            raise
        self._running_task = shed if background else None

    def release(self) -> None:
        """The generation is over: the first waiting user's turn goes next, else the first
        waiting task."""
        self._busy = False
        self._running_task = None
        if not self._waiting:
            return
        waiter = next((w for w in self._waiting if not w.background), self._waiting[0])
        self._waiting.remove(waiter)
        self._busy = True
        waiter.granted.set_result(None)

    def _grant(self, background: bool, shed: threading.Event) -> None:
        self._busy = True
        self._running_task = shed if background else None
