"""The circuit breakers: the state machine on a clock the test moves, the split between a
provider's circuit and its models', and a real gateway under mixed traffic."""

from __future__ import annotations

import asyncio

import httpx

from app.providers.breaker import (
    MAX_MODEL_CIRCUITS,
    Blocked,
    Breakers,
    BreakerState,
    CircuitBreaker,
)
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState


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


def breakers(clock: Clock, threshold: int = 2) -> Breakers:
    return Breakers(["p"], threshold=threshold, reset_after=10, clock=clock)


def test_one_models_failures_open_its_circuit_only() -> None:
    circuits = breakers(Clock())
    for _ in range(2):
        assert circuits.blocked("p", "broken") is None
        circuits.failure("p", "broken", unreachable=False)
    assert circuits.blocked("p", "broken") == Blocked("p/broken", 10)
    assert circuits.is_open("p", "broken")
    assert circuits.blocked("p", "healthy") is None
    assert not circuits.is_open("p", "healthy")
    assert circuits.providers["p"].state is BreakerState.CLOSED
    assert circuits.model_states("p") == {"broken": BreakerState.OPEN}


def test_failures_of_more_than_one_model_open_the_providers_circuit() -> None:
    circuits = breakers(Clock())
    circuits.failure("p", "a", unreachable=False)
    circuits.failure("p", "b", unreachable=False)
    assert state_of(circuits.providers["p"]) is BreakerState.CLOSED
    circuits.failure("p", "a", unreachable=False)
    assert state_of(circuits.providers["p"]) is BreakerState.OPEN
    assert circuits.blocked("p", "c") == Blocked("p", 10)


def test_a_success_forgets_the_failing_models() -> None:
    circuits = breakers(Clock())
    circuits.failure("p", "a", unreachable=False)
    circuits.success("p", "c")
    circuits.failure("p", "b", unreachable=False)
    circuits.failure("p", "b", unreachable=False)
    assert circuits.providers["p"].state is BreakerState.CLOSED
    assert circuits.model_states("p") == {"b": BreakerState.OPEN}
    circuits.success("p", "b")
    assert circuits.model_states("p") == {}


def test_an_unreachable_provider_opens_its_circuit_not_the_models() -> None:
    clock = Clock()
    circuits = breakers(clock)
    circuits.failure("p", "a", unreachable=True)
    circuits.failure("p", "a", unreachable=True)
    assert circuits.blocked("p", "a") == Blocked("p", 10)
    assert circuits.model_states("p") == {}
    clock.now += 10
    assert circuits.blocked("p", "a") is None  # the probe
    assert circuits.blocked("p", "b") == Blocked("p", 0)
    circuits.success("p", "a")
    assert circuits.providers["p"].state is BreakerState.CLOSED


def test_a_models_probe_is_given_back_when_the_provider_refuses() -> None:
    clock = Clock()
    circuits = breakers(clock, threshold=1)
    circuits.failure("p", "a", unreachable=False)
    circuits.failure("p", "b", unreachable=False)  # the provider's circuit opens too
    clock.now += 10
    circuits.providers["p"].allow()  # another request holds the provider's probe
    assert circuits.blocked("p", "a") == Blocked("p", 0)
    circuits.providers["p"].release()
    assert circuits.blocked("p", "a") is None


def test_the_models_remembered_are_bounded() -> None:
    circuits = breakers(Clock(), threshold=1)
    for n in range(MAX_MODEL_CIRCUITS + 10):
        circuits.failure("p", f"m{n}", unreachable=False)
        circuits.success("p", "ok")  # keeps the provider's circuit closed
    states = circuits.model_states("p")
    assert len(states) == MAX_MODEL_CIRCUITS
    assert "m0" not in states
    assert f"m{MAX_MODEL_CIRCUITS + 9}" in states


# --- through a real gateway: one broken model among healthy ones --------------------------------


async def test_a_broken_model_opens_its_own_circuit_not_its_providers(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    """Concurrent traffic, one request in five for a model the upstream always fails: every
    request for a healthy model is answered, the broken model's circuit opens (and then spares
    the upstream), the provider's stays closed."""
    url = make_gateway(retry_attempts=2, breaker_failures=3, breaker_reset=60)
    models = ["openai/error-500" if i % 5 == 0 else "openai/gpt-test" for i in range(200)]
    limit = asyncio.Semaphore(16)

    async def ask(http: httpx.AsyncClient, model: str) -> tuple[str, httpx.Response]:
        async with limit:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            return model, await http.post(f"{url}/v1/chat/completions", json=body)

    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(*(ask(http, model) for model in models))
        report = (await http.get(f"{url}/health")).json()["providers"]["openai"]
    healthy = [resp.status_code for model, resp in answers if model == "openai/gpt-test"]
    assert healthy == [200] * 160
    broken = [resp for model, resp in answers if model == "openai/error-500"]
    refused = [resp for resp in broken if resp.status_code == 503]
    assert all(resp.status_code in (502, 503) for resp in broken)
    assert len(refused) > 20
    assert all("circuit" in resp.json()["error"]["message"] for resp in refused)
    sent = sum(1 for body in upstream.requests if body["model"] == "error-500")
    assert sent < len(broken)  # two attempts each without the circuit
    assert report["status"] == "up"
    assert report["circuit"] == "closed"
    assert report["model_circuits"] == {"error-500": "open"}


def test_an_unreachable_upstream_opens_the_providers_circuit(make_gateway: MakeGateway) -> None:
    url = make_gateway(
        openai_base_url="http://127.0.0.1:9/v1", retry_attempts=1, breaker_failures=2
    )
    messages = [{"role": "user", "content": "hi"}]
    said = [
        httpx.post(
            f"{url}/v1/chat/completions", json={"model": model, "messages": messages}
        ).json()["error"]["message"]
        for model in ("openai/a", "openai/a", "openai/b")
    ]
    assert [message.split(" ", 2)[1] for message in said] == ["cannot", "cannot", "circuit"]
    assert said[2].startswith("openai: circuit openai open")
    report = httpx.get(f"{url}/health").json()["providers"]["openai"]
    assert (report["circuit"], report["model_circuits"]) == ("open", {})
