"""SIGTERM and SIGINT ask the watchdog to stop; which one came is passed on to the gateway."""

from __future__ import annotations

import asyncio
import signal


class Stop:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signum = signal.SIGTERM

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._received, signum)

    def _received(self, signum: signal.Signals) -> None:
        self.signum = signum
        self.event.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep `seconds`; True (at once) when a stop was asked for meanwhile."""
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self.event.wait()
        except TimeoutError:
            return False
        return True
