"""When to restart: exponential backoff with jitter, under a budget of N restarts in M minutes."""

from __future__ import annotations

import random
from collections import deque

from app.config import OpsSettings


class RestartBudget:
    """The restarts of one service in the last `window` seconds. The first of them is at once;
    each further one waits `backoff`, doubled per restart already in the window, at most
    `backoff_max`, times a random factor from 0.5 to 1 (so services that failed together do
    not restart together). Once `restarts` are in the window, there is no next one."""

    def __init__(
        self,
        restarts: int,
        window: float,
        backoff: float,
        backoff_max: float,
        rng: random.Random | None = None,
    ) -> None:
        self.restarts = restarts
        self.window = window
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._times: deque[float] = deque()

    def recent(self, now: float) -> int:
        """Restarts in the window that ends at `now` (monotonic seconds)."""
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times)

    def take(self, now: float) -> float | None:
        """Spend one restart at `now`: the seconds to wait before it, or None when the budget is
        spent."""
        done = self.recent(now)
        if done >= self.restarts:
            return None
        self._times.append(now)
        if done == 0:
            return 0.0
        delay = min(self._backoff_max, self._backoff * 2.0 ** (done - 1))
        return delay * self._rng.uniform(0.5, 1.0)


def restart_budget(settings: OpsSettings) -> RestartBudget:
    """One service's budget, as WATCHDOG_RESTARTS, WATCHDOG_WINDOW_MINUTES and the backoff say."""
    return RestartBudget(
        settings.watchdog_restarts,
        settings.watchdog_window_minutes * 60,
        settings.watchdog_backoff,
        settings.watchdog_backoff_max,
    )
