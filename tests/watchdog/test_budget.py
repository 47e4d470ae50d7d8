"""The restart budget and its backoff."""

from __future__ import annotations

import random

import pytest

from app.watchdog.budget import RestartBudget


def test_the_first_restart_is_at_once_then_the_wait_doubles_with_jitter_up_to_the_cap() -> None:
    budget = RestartBudget(10, window=600, backoff=1, backoff_max=5, rng=random.Random(7))
    delays = [budget.take(now=float(i)) for i in range(6)]
    assert delays[0] == 0
    for delay, full in zip(delays[1:], [1, 2, 4, 5, 5], strict=True):
        assert delay is not None
        assert full / 2 <= delay <= full
    assert len({round(d or 0, 6) for d in delays[3:]}) > 1  # jittered, not one fixed value


def test_the_budget_is_n_restarts_in_the_window_then_none() -> None:
    budget = RestartBudget(3, window=60, backoff=0, backoff_max=0)
    assert [budget.take(0), budget.take(10), budget.take(20)] == [0, 0, 0]
    assert budget.take(30) is None
    assert budget.take(59.9) is None
    assert budget.recent(59.9) == 3
    assert budget.take(60) == 0  # the restart at 0 has left the window
    assert budget.recent(60) == 3


@pytest.mark.parametrize("seed", range(20))
def test_a_delay_never_exceeds_the_cap(seed: int) -> None:
    budget = RestartBudget(50, window=1e9, backoff=0.5, backoff_max=3, rng=random.Random(seed))
    delays = [budget.take(float(i)) for i in range(50)]
    assert all(d is not None and 0 <= d <= 3 for d in delays)
