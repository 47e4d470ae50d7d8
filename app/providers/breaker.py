"""Circuit breakers (closed, open, half-open): one per provider and one per model."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

MAX_MODEL_CIRCUITS = 1024
"""Models with failures since their last success that are remembered; past that the oldest is
forgotten (model names come from clients)."""


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `reset_after` seconds lets one probe
    through (half-open); the probe's success closes it, its failure opens it again."""

    def __init__(
        self, threshold: int, reset_after: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = threshold
        self._reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.state = BreakerState.CLOSED

    def allow(self) -> bool:
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset_after:
            self.state = BreakerState.HALF_OPEN
            self._probing = False
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self.state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()

    def release(self) -> None:
        """The allowed request ended without telling anything about the provider's health."""
        self._probing = False

    def retry_in(self) -> float:
        return max(0.0, self._opened_at + self._reset_after - self._clock())


@dataclass(frozen=True, slots=True)
class Blocked:
    circuit: str
    """The open circuit: `provider` or `provider/model`."""
    retry_in: float


class Breakers:
    """A router's circuits: one per provider, and one per model of a provider that failed.

    A model's failures open its own circuit, so that one broken model leaves its provider's
    other models alone. The provider's circuit counts the failures of the provider itself: it
    was unreachable, or more than one of its models failed since its last success."""

    def __init__(
        self,
        providers: Iterable[str],
        threshold: int,
        reset_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._new = partial(CircuitBreaker, threshold, reset_after, clock)
        self.providers = {name: self._new() for name in providers}
        self._models: dict[tuple[str, str], CircuitBreaker] = {}
        self._failing: dict[str, set[str]] = {name: set() for name in self.providers}

    def blocked(self, provider: str, model: str) -> Blocked | None:
        """None when a request may go (as the probe of a half-open circuit, if one is), else
        the open circuit."""
        own = self._models.get((provider, model))
        if own is not None and not own.allow():
            return Blocked(f"{provider}/{model}", own.retry_in())
        shared = self.providers[provider]
        if not shared.allow():
            if own is not None:
                own.release()
            return Blocked(provider, shared.retry_in())
        return None

    def success(self, provider: str, model: str) -> None:
        self.providers[provider].success()
        self._failing[provider].clear()
        self._models.pop((provider, model), None)

    def failure(self, provider: str, model: str, *, unreachable: bool) -> None:
        """A retryable failure of `model`; `unreachable`: no connection to the provider at all,
        which says nothing about the model."""
        shared = self.providers[provider]
        if unreachable:
            shared.failure()
            self._release_model(provider, model)
            return
        own = self._models.get((provider, model))
        if own is None:
            if len(self._models) >= MAX_MODEL_CIRCUITS:
                del self._models[next(iter(self._models))]
            own = self._models[provider, model] = self._new()
        own.failure()
        failing = self._failing[provider]
        if len(failing) < 2:
            failing.add(model)
        if len(failing) > 1:
            shared.failure()
        else:
            shared.release()

    def release(self, provider: str, model: str) -> None:
        """The allowed request ended without telling anything about either's health."""
        self.providers[provider].release()
        self._release_model(provider, model)

    def is_open(self, provider: str, model: str) -> bool:
        own = self._models.get((provider, model))
        return self.providers[provider].state is BreakerState.OPEN or (
            own is not None and own.state is BreakerState.OPEN
        )

    def model_states(self, provider: str) -> dict[str, BreakerState]:
        """The circuits of `provider`'s models that are not closed."""
        return {
            model: breaker.state
            for (name, model), breaker in self._models.items()
            if name == provider and breaker.state is not BreakerState.CLOSED
        }

    def _release_model(self, provider: str, model: str) -> None:
        own = self._models.get((provider, model))
        if own is not None:
            own.release()
