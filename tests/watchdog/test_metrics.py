"""p95 and the error rate between two reads of /metrics, from Prometheus text written by
prometheus_client itself, as the gateway's /metrics is."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from app.watchdog.metrics import Snapshot, parse, quantile, window


class Gateway:
    """The gateway's request histogram, by method, route and status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.histogram = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_request_method", "http_route", "http_response_status_code"],
            registry=self.registry,
        )

    def requests(self, n: int, seconds: float, status: str = "200", route: str = "/v1/x") -> None:
        for _ in range(n):
            self.histogram.labels("POST", route, status).observe(seconds)

    def scrape(self) -> Snapshot:
        return parse(generate_latest(self.registry).decode())


def test_the_window_is_the_requests_between_two_reads() -> None:
    gateway = Gateway()
    gateway.requests(100, 8.0, "500")  # before the window: left out
    before = gateway.scrape()
    gateway.requests(90, 0.04)
    gateway.requests(10, 0.7, "502")
    seen = window(before, gateway.scrape())
    assert seen.requests == 100
    assert seen.error_rate == pytest.approx(0.10)
    # the 95th of 100 is the 5th of the 10 in the bucket (0.5, 0.75]: 0.5 + 0.25 * 5/10
    assert seen.p95_ms == pytest.approx(625)


def test_the_watchdogs_own_routes_are_left_out() -> None:
    gateway = Gateway()
    before = gateway.scrape()
    gateway.requests(20, 3.0)
    gateway.requests(1000, 0.001, route="/health/live")
    gateway.requests(1000, 0.001, route="/health/ready")
    gateway.requests(50, 0.002, route="/health")
    gateway.requests(50, 0.002, "503", route="/metrics")
    seen = window(before, gateway.scrape())
    assert seen.requests == 20
    assert seen.error_rate == 0
    assert seen.p95_ms == pytest.approx(4875)


def test_counters_that_went_back_mean_a_restart_and_count_from_zero() -> None:
    first = Gateway()
    first.requests(500, 0.01)
    before = first.scrape()
    restarted = Gateway()
    restarted.requests(10, 0.2, "500")
    seen = window(before, restarted.scrape())
    assert seen.requests == 10
    assert seen.error_rate == 1.0
    assert seen.p95_ms == pytest.approx(100 + 150 * 0.95)


def test_no_requests_no_quantile() -> None:
    gateway = Gateway()
    before = gateway.scrape()
    seen = window(before, gateway.scrape())
    assert (seen.requests, seen.p95_ms, seen.error_rate) == (0, None, 0)
    assert quantile(0.95, {}) is None


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    gateway = Gateway()
    gateway.requests(10, 60.0)
    assert window(None, gateway.scrape()).p95_ms == pytest.approx(10_000)


def test_text_without_the_histogram_reads_as_no_requests() -> None:
    snapshot = parse("# TYPE up gauge\nup 1\n")
    assert (snapshot.total, snapshot.errors, snapshot.buckets) == (0, 0, {})
