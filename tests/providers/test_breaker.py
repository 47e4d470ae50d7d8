"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

from app.providers.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """Read the state afresh: mypy would otherwise keep the literal it narrowed to
    at the previous assert, not knowing that failure()/success() change it."""
    return breaker.state


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(threshold=3, reset_after=10, clock=Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    breaker.failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allow()


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_after=10, clock=clock)
    breaker.failure()
    assert breaker.retry_in() == 10
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow()


def test_a_successful_probe_closes_and_a_failed_one_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, reset_after=5, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 5
    assert breaker.allow()
    breaker.failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.retry_in() == 5
    clock.now += 5
    assert breaker.allow()
    breaker.success()
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.failure()
    assert state_of(breaker) is BreakerState.CLOSED


def test_a_released_probe_lets_the_next_one_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_after=1, clock=clock)
    breaker.failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()
