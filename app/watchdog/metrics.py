"""Latency and error rate from the gateway's `/metrics` (Prometheus text): the histogram
`http_server_request_duration_seconds`, read twice; the window is the requests in between. The
watchdog's own probes (`/health*`) and scrapes (`/metrics`) are left out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

HISTOGRAM = "http_server_request_duration_seconds"


class NoMetrics(Exception):
    """The gateway serves no /metrics (404): no latency or error-rate alerts."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counts since the gateway started, summed over methods, routes and statuses: requests at
    most `le` seconds (cumulative, by bound), all requests, and those answered 5xx."""

    buckets: dict[float, float]
    total: float
    errors: float


@dataclass(frozen=True, slots=True)
class Window:
    requests: float
    p95_ms: float | None
    error_rate: float


def _own(route: str) -> bool:
    return route.startswith("/health") or route == "/metrics"


def parse(text: str) -> Snapshot:
    buckets: dict[float, float] = {}
    total = errors = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if _own(sample.labels.get("http_route", "")):
                continue
            if sample.name == f"{HISTOGRAM}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == f"{HISTOGRAM}_count":
                total += sample.value
                if sample.labels.get("http_response_status_code", "").startswith("5"):
                    errors += sample.value
    return Snapshot(buckets, total, errors)


def window(before: Snapshot | None, after: Snapshot) -> Window:
    """The requests between two snapshots; all of `after` when there is no `before` or the
    counters went back (the gateway restarted in between)."""
    buckets = after.buckets
    total, errors = after.total, after.errors
    if before is not None and after.total >= before.total:
        deltas = {le: n - before.buckets.get(le, 0.0) for le, n in after.buckets.items()}
        if all(n >= 0 for n in deltas.values()):
            buckets = deltas
            total, errors = after.total - before.total, after.errors - before.errors
    rate = errors / total if total else 0.0
    return Window(total, quantile(0.95, buckets), rate)


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile in milliseconds, interpolated inside its bucket as Prometheus's
    histogram_quantile does; the highest finite bound when it falls in the +Inf bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower * 1000
            share = (rank - below) / (count - below) if count > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, count
    return lower * 1000


async def scrape(client: httpx.AsyncClient, base_url: str, within: float) -> Snapshot:
    """GET /metrics; raises NoMetrics on a 404, httpx.HTTPError when it cannot be read."""
    response = await client.get(f"{base_url}/metrics", timeout=within)
    if response.status_code == 404:
        raise NoMetrics
    response.raise_for_status()
    return parse(response.text)
