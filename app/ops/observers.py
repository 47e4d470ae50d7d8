"""Where the gateway's hooks report: the metrics, the traces, or both, through one call at each
hook (a provider attempt, a retrieval; a turn's own events go through its `chat.turn.Meter`).

`app.ops.tracing` imports OpenTelemetry's SDK and exporter; it is named here for the type checker
only, and imported by `services.py` only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.ops.metrics import Metrics
from app.providers.router import Attempt

if TYPE_CHECKING:
    from app.ops.tracing import Tracing


class Observers:
    def __init__(self, metrics: Metrics | None, tracing: Tracing | None) -> None:
        self.metrics = metrics
        self.tracing = tracing

    def attempted(self, attempt: Attempt) -> None:
        if self.metrics is not None:
            self.metrics.attempted(attempt)
        if self.tracing is not None:
            self.tracing.attempted(attempt)

    def fell_back(self, provider: str) -> None:
        """(A trace shows a fallback on its attempt's span.)"""
        if self.metrics is not None:
            self.metrics.fell_back(provider)

    def retrieval(self, seconds: float, passages: int, memories: int) -> None:
        if self.metrics is not None:
            self.metrics.retrieval(seconds, passages)
        if self.tracing is not None:
            self.tracing.retrieval(seconds, passages, memories)


def observers(metrics: Metrics | None, tracing: Tracing | None) -> Observers | None:
    """None when neither is on, so that no hook does any work."""
    if metrics is None and tracing is None:
        return None
    return Observers(metrics, tracing)
