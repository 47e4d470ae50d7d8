"""One service watched: its probes counted against WATCHDOG_FAILURES, its dependencies and its
metrics read, and the alerts they call for. The modes decide what a restart is."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import httpx

from app.config import OpsSettings
from app.watchdog.alerts import Alerts, lasted
from app.watchdog.budget import RestartBudget
from app.watchdog.metrics import NoMetrics, Snapshot, scrape, window
from app.watchdog.probe import Dependency, Probe, dependencies, describe, probe

log = logging.getLogger("app.watchdog")

DOWN = "service_down"
EXHAUSTED = "restart_budget_exhausted"
DEPENDENCY = "dependency_down"
LATENCY = "latency_p95"
ERRORS = "error_rate"


class Watch:
    """`service` probed at `url` (None: no HTTP probe, only what the mode reports)."""

    def __init__(
        self,
        service: str,
        url: str | None,
        settings: OpsSettings,
        alerts: Alerts,
        client: httpx.AsyncClient,
    ) -> None:
        self.service = service
        self.url = url
        self._settings = settings
        self._alerts = alerts
        self._client = client
        self._timeout = min(settings.watchdog_timeout, settings.watchdog_interval)
        self.failures = 0
        self._failing_since: datetime | None = None
        self._restarts = 0
        self._status = "starting"
        self._dependencies: dict[str, Dependency] = {}
        self._started = time.monotonic()
        self._seen_up = False
        self._metrics: Snapshot | None = None
        self._next_scrape = 0.0
        self._scrape = True

    @property
    def answers(self) -> bool:
        """Its last probe passed (it may not be ready), or Docker called it healthy."""
        return self._status in ("up", "not ready")

    def started(self, restarted: bool = False) -> None:
        """It was (re)started now: its start period begins, and its metrics start from zero."""
        self._started = time.monotonic()
        self._seen_up = False
        self._status = "starting"
        self.failures = 0
        self._metrics = None
        self._next_scrape = self._started
        self._scrape = True
        if restarted:
            self._restarts += 1

    async def check(self) -> bool:
        """Probe it; True when it has failed WATCHDOG_FAILURES probes in a row, the start period
        aside. Passing, it also reads its dependencies and, when due, its metrics."""
        if self.url is None:
            return False
        result = await probe(self._client, self.url, self._timeout)
        if result.status == "down":
            return self._failed(result)
        self.up(result.status)
        await self._read_dependencies(self.url)
        if self._scrape and time.monotonic() >= self._next_scrape:
            await self._read_metrics(self.url)
        return False

    def _failed(self, result: Probe) -> bool:
        starting = time.monotonic() - self._started < self._settings.watchdog_start_period
        if starting and not self._seen_up:
            log.debug("%s not up yet: %s", self.service, result.detail)
            return False
        self.failures += 1
        self._failing_since = self._failing_since or datetime.now(UTC)
        wanted = self._settings.watchdog_failures
        log.warning(
            "%s probe failed (%d/%d): %s", self.service, self.failures, wanted, result.detail
        )
        if self.failures < wanted:
            return False
        self.down(f"{self.failures} probes failed in a row, the last: {result.detail}")
        return True

    def down(self, why: str) -> None:
        """It is down (failed probes, exited, Docker says unhealthy): alert, with how long."""
        since = self._alerts.since(DOWN, self.service) or self._failing_since or datetime.now(UTC)
        self._status = "down"
        self._alerts.fire(
            DOWN, self.service, f"{self.service} is down for {lasted(since)}: {why}", since=since
        )

    def exhausted(self, budget: RestartBudget, then: str) -> None:
        """No restart left in the budget: alert, saying what the watchdog does `then`."""
        minutes = budget.window / 60
        self._alerts.fire(
            EXHAUSTED,
            self.service,
            f"{self.service}: restart budget exhausted ({budget.restarts} restarts in "
            f"{minutes:g} min) and it is still down; {then}",
            value=budget.restarts,
            threshold=budget.restarts,
        )

    def up(self, status: str = "up") -> None:
        """It answers (`up`, or `not ready`: live, its dependencies down)."""
        self._seen_up = True
        self.failures = 0
        self._failing_since = None
        if status != self._status:
            level = logging.WARNING if status == "not ready" else logging.INFO
            log.log(level, "%s is %s", self.service, status)
            self._status = status
        self._alerts.resolve(
            EXHAUSTED, self.service, f"{self.service} is up again: restarts resume when needed"
        )
        since = self._alerts.since(DOWN, self.service)
        if since is not None:
            again = f", after {self._restarts} restart(s)" if self._restarts else ""
            self._restarts = 0
            self._alerts.resolve(
                DOWN, self.service, f"{self.service} is up again, {lasted(since)} down{again}"
            )

    async def _read_dependencies(self, url: str) -> None:
        found = await dependencies(self._client, url, self._timeout)
        if found is None:
            return
        for name, dependency in found.items():
            before = self._dependencies.get(name)
            if before is None or before.status != dependency.status:
                log.log(
                    logging.WARNING if dependency.status == "down" else logging.INFO,
                    "%s dependency %s: %s (%s)",
                    self.service,
                    name,
                    dependency.status,
                    dependency.detail,
                )
            key = f"{self.service}/{name}"
            if dependency.status == "down":
                self._alerts.fire(
                    DEPENDENCY,
                    key,
                    f"{self.service}: {name} is down: {dependency.detail}",
                    value=dependency.detail,
                )
            else:
                self._alerts.resolve(
                    DEPENDENCY, key, f"{self.service}: {name} is {dependency.status} again"
                )
        self._dependencies = found

    async def _read_metrics(self, url: str) -> None:
        settings = self._settings
        self._next_scrape = time.monotonic() + settings.alert_metrics_interval
        try:
            snapshot = await scrape(self._client, url, self._timeout)
        except NoMetrics:
            log.info("%s serves no /metrics: no latency or error-rate alerts", self.service)
            self._scrape = False
            return
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("%s: /metrics not read: %s", self.service, describe(exc))
            return
        before, self._metrics = self._metrics, snapshot
        if before is None:
            return
        seen = window(before, snapshot)
        if seen.requests < settings.alert_min_requests:
            return
        over = f"({seen.requests:g} requests in the last {settings.alert_metrics_interval:g} s)"
        if settings.alert_p95_ms and seen.p95_ms is not None:
            p95 = round(seen.p95_ms)
            self._judge(
                LATENCY,
                seen.p95_ms > settings.alert_p95_ms,
                f"p95 latency {p95} ms, over {settings.alert_p95_ms:g} ms {over}",
                f"p95 latency back to {p95} ms",
                p95,
                settings.alert_p95_ms,
            )
        if settings.alert_error_rate:
            rate = round(seen.error_rate, 4)
            self._judge(
                ERRORS,
                seen.error_rate > settings.alert_error_rate,
                f"{rate:.1%} of requests failed (5xx), over {settings.alert_error_rate:.1%} {over}",
                f"error rate back to {rate:.1%}",
                rate,
                settings.alert_error_rate,
            )

    def _judge(
        self, alert: str, breached: bool, firing: str, resolved: str, value: float, limit: float
    ) -> None:
        if breached:
            self._alerts.fire(alert, self.service, f"{self.service}: {firing}", value, limit)
        else:
            self._alerts.resolve(alert, self.service, f"{self.service}: {resolved}", value)
