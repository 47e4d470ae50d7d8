"""A thread-safe token bucket rate limiter for outgoing API calls.

The bucket holds at most `capacity` tokens and is refilled continuously at `rate` tokens per
second. Each call takes one token; when the bucket is empty, `acquire` sleeps until a token is
available, so bursts up to the capacity pass immediately and the long-run average never exceeds
the rate.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """Allow `rate` calls per second on average, with bursts of up to `capacity` calls."""

    def __init__(self, rate: float, capacity: int) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be positive and capacity at least 1")
        self.rate = rate
        self.capacity = capacity
        self._tokens = float(capacity)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        # A clock that never goes backwards: wall-clock changes cannot create free tokens.
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> bool:
        """Take a token if one is available right now, without waiting."""
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait for a token; give up and return False after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                wait = (1 - self._tokens) / self.rate
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                wait = min(wait, remaining)
            time.sleep(wait)


if __name__ == "__main__":
    bucket = TokenBucket(rate=5, capacity=2)
    started = time.monotonic()
    for number in range(6):
        bucket.acquire()
        print(f"call {number} at {time.monotonic() - started:.2f}s")
