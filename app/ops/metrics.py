"""The gateway's Prometheus metrics: what one request, one model turn, one provider attempt
recorded, and what the services' live state says at the moment of a scrape.

Names follow OpenTelemetry's semantic conventions where one exists (HTTP server, GenAI client),
in their Prometheus form; the gateway's own are `gateway_*`. Every label takes a bounded set of
values: route templates (never raw paths), provider names, model ids a provider answered to,
tool names, cache names, error codes.

With PROMETHEUS_MULTIPROC_DIR set (several worker processes), counters and histograms are
written to that directory by each process and summed at scrape; the live readings (circuits,
caches, refusals, the embedder's queue, dependencies) are those of the process scraped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.knowledge.service import Knowledge
from app.providers.router import Attempt, Router
from app.state.cache import Caches
from app.state.ratelimit import RateLimiter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# OpenTelemetry's advised boundaries for each instrument (seconds, tokens).
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)
_OPERATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
)  # fmt: skip
_TOKEN_BUCKETS = tuple(4.0**n for n in range(14))  # 1, 4, 16 … 67M
_PASSAGE_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21)
# a `_created` series beside every counter and histogram only doubles what a scrape reads
disable_created_metrics()  # type: ignore[no-untyped-call]

_GEN_AI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


@dataclass(slots=True)
class TurnRecord:
    """One model turn as its events told it, for `Metrics.turn`."""

    operation: str
    model: str
    seconds: float
    ttft: float | None
    input_tokens: int
    output_tokens: int
    error: str = ""
    finish_reasons: tuple[str, ...] = ()


class Metrics:
    """The instruments, in a registry of their own (an app's, so that apps made side by side in
    one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        """What a scrape reads."""
        into = CollectorRegistry(auto_describe=True)
        self._recorded: Collector = into
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # each process writes its values to the directory; a scrape sums every process's
            self._recorded = MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            self.registry.register(into)
            ProcessCollector(registry=self.registry)
        self._http = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ("http_request_method", "http_route", "http_response_status_code"),
            buckets=_HTTP_BUCKETS,
            registry=into,
        )
        self._tokens = Histogram(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used, per model turn.",
            (*_GEN_AI, "gen_ai_token_type"),
            buckets=_TOKEN_BUCKETS,
            registry=into,
        )
        self._operation = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of model turns, from the request to the last event.",
            (*_GEN_AI, "error_type"),
            buckets=_OPERATION_BUCKETS,
            registry=into,
        )
        self._ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from the request to the answer's first token.",
            _GEN_AI,
            buckets=_TTFT_BUCKETS,
            registry=into,
        )
        self._attempts = Counter(
            "gateway_provider_requests",
            "Requests sent to providers (each retry and fallback counts), by outcome.",
            ("gen_ai_provider_name", "outcome"),
            registry=into,
        )
        self._fallbacks = Counter(
            "gateway_fallbacks",
            "Answers given by a fallback after the first choice failed, by the provider that "
            "answered.",
            ("gen_ai_provider_name",),
            registry=into,
        )
        self._tool_calls = Counter(
            "gateway_tool_calls",
            "The gateway's own tool calls, by tool and outcome.",
            ("tool", "outcome"),
            registry=into,
        )
        self._tool_seconds = Histogram(
            "gateway_tool_duration_seconds",
            "Duration of the gateway's own tool calls.",
            ("tool",),
            buckets=_HTTP_BUCKETS,
            registry=into,
        )
        self._retrieval = Histogram(
            "gateway_retrieval_duration_seconds",
            "Time to retrieve a turn's passages and memories.",
            buckets=_HTTP_BUCKETS,
            registry=into,
        )
        self._passages = Histogram(
            "gateway_retrieval_passages",
            "Passages placed in a turn's context.",
            buckets=_PASSAGE_BUCKETS,
            registry=into,
        )
        self._feedback = Counter(
            "gateway_feedback",
            "Users' ratings of answers, by the model and pipeline that answered and the rating "
            "(up, down); a user's repeat of their rating of an answer is not counted again, a "
            "changed one is (and the rating it replaced in gateway_feedback_withdrawn).",
            ("model", "pipeline", "rating"),
            registry=into,
        )
        self._feedback_withdrawn = Counter(
            "gateway_feedback_withdrawn",
            "Ratings replaced by their user's different rating of the same answer, or deleted "
            "with their user (DELETE /v1/memories): the ratings that stand are "
            "gateway_feedback_total less these.",
            ("model", "pipeline", "rating"),
            registry=into,
        )

        # labelled children by their label values (a few µs a request saved: see PERFORMANCE.md)
        self._http_children: dict[tuple[str, str, int], Any] = {}
        self._turn_children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}
        self._attempt_children: dict[tuple[str, str], Any] = {}

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self._http.labels(method, route, str(status))
        child.observe(seconds)

    def attempted(self, attempt: Attempt) -> None:
        key = (attempt.route.provider.name, "ok" if attempt.error is None else attempt.error.code)
        child = self._attempt_children.get(key)
        if child is None:
            child = self._attempt_children[key] = self._attempts.labels(*key)
        child.inc()

    def fell_back(self, provider: str) -> None:
        self._fallbacks.labels(provider).inc()

    def tool_call(self, tool: str, ok: bool, seconds: float) -> None:
        self._tool_calls.labels(tool, "ok" if ok else "error").inc()
        self._tool_seconds.labels(tool).observe(seconds)

    def rated(self, model: str, pipeline: str | None, rating: str, replaced: str | None) -> None:
        """A user rated an answer of `model` (and `pipeline`) `rating` (up, down), replacing
        their different rating `replaced` of it, if they had given one."""
        self._feedback.labels(model, pipeline or "", rating).inc()
        if replaced is not None:
            self._feedback_withdrawn.labels(model, pipeline or "", replaced).inc()

    def withdrawn(self, model: str, pipeline: str | None, rating: str) -> None:
        """A user's rating `rating` (up, down) of an answer of `model` (and `pipeline`) was
        deleted with the user."""
        self._feedback_withdrawn.labels(model, pipeline or "", rating).inc()

    def retrieval(self, seconds: float, passages: int) -> None:
        self._retrieval.observe(seconds)
        self._passages.observe(passages)

    def turn(self, record: TurnRecord) -> None:
        key = (record.operation, record.model, record.error)
        children = self._turn_children.get(key)
        if children is None:
            provider, _, model = record.model.partition("/")
            labels = (record.operation, provider, model)
            children = self._turn_children[key] = (
                self._operation.labels(*labels, record.error),
                self._ttft.labels(*labels),
                self._tokens.labels(*labels, "input"),
                self._tokens.labels(*labels, "output"),
            )
        operation, ttft, input_tokens, output_tokens = children
        operation.observe(record.seconds)
        if record.ttft is not None:
            ttft.observe(record.ttft)
        if record.input_tokens or record.output_tokens:
            input_tokens.observe(record.input_tokens)
            output_tokens.observe(record.output_tokens)

    def watch(
        self, router: Router, caches: Caches, limiter: RateLimiter, knowledge: Knowledge
    ) -> None:
        """Read the services' live state at each scrape."""
        self.registry.register(_Live(router, caches, limiter, knowledge))

    def render(self, health: dict[str, Any]) -> bytes:
        """The exposition, with the dependencies of `health` (a health report) as gauges."""
        up = GaugeMetricFamily(
            "gateway_dependency_up",
            "Whether a dependency answered its last health probe (1) or not (0).",
            labels=("dependency",),
        )
        latency = GaugeMetricFamily(
            "gateway_dependency_latency_seconds",
            "How long the last health probe of a dependency took.",
            labels=("dependency",),
        )
        for name, probe in _dependencies(health):
            up.add_metric((name,), 1.0 if probe.get("status") in ("up", "healthy") else 0.0)
            if isinstance(ms := probe.get("latency_ms"), int | float):
                latency.add_metric((name,), ms / 1000)
        probes = CollectorRegistry()
        probes.register(_Fixed([up, latency]))
        return generate_latest(self.registry) + generate_latest(probes)

    def quantiles(self, name: str, qs: Sequence[float]) -> dict[str, float | None]:
        """The `qs` quantiles (in ms) of histogram `name` over all its labels, estimated from
        its buckets as Prometheus's `histogram_quantile` does."""
        buckets: dict[float, float] = {}
        for family in self._recorded.collect():
            if family.name != name:
                continue
            for sample in family.samples:
                if sample.name == name + "_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
        return {f"p{round(q * 100)}": _quantile(q, sorted(buckets.items())) for q in qs}


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return round(lower * 1000, 1)
            share = (rank - below) / (count - below) if count > below else 1.0
            return round((lower + (bound - lower) * share) * 1000, 1)
        lower, below = bound, count
    return round(lower * 1000, 1)


def _dependencies(health: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each provider (but one merely absent from its default URL), Redis, Chroma, the embedder."""
    for name, provider in health.get("providers", {}).items():
        if provider.get("status") != "unreachable":
            yield name, provider
    for name in ("redis", "chromadb", "embeddings"):
        if isinstance(health.get(name), dict):
            yield name, health[name]


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class _Live(Collector):
    """Circuits, cache lookups, rate-limit refusals and the embedder's queue, as they are."""

    def __init__(
        self, router: Router, caches: Caches, limiter: RateLimiter, knowledge: Knowledge
    ) -> None:
        self._router = router
        self._caches = caches
        self._limiter = limiter
        self._knowledge = knowledge

    def collect(self) -> Iterator[Metric]:
        circuit = GaugeMetricFamily(
            "gateway_provider_circuit_state",
            "Each provider's circuit breaker: 1 for the state it is in.",
            labels=("gen_ai_provider_name", "state"),
        )
        for name, breaker in self._router.breakers.providers.items():
            for state in ("closed", "open", "half_open"):
                circuit.add_metric((name, state), 1.0 if breaker.state.value == state else 0.0)
        yield circuit
        lookups = CounterMetricFamily(
            "gateway_cache_lookups",
            "Cache lookups by cache and result (bypass: Redis was down).",
            labels=("cache", "result"),
        )
        for name, counts in self._caches.lookups().items():
            for result, count in counts.items():
                lookups.add_metric((name, result), count)
        yield lookups
        refusals = CounterMetricFamily(
            "gateway_rate_limit_refusals",
            "Requests refused over a key's limit, by the limit that refused them.",
            labels=("limit",),
        )
        for limit, count in self._limiter.refusals.items():
            refusals.add_metric((limit,), count)
        yield refusals
        queue = self._knowledge.queued()
        if queue is not None:
            yield GaugeMetricFamily(
                "gateway_embedder_queue", "Texts waiting for the local embedder.", value=queue
            )
