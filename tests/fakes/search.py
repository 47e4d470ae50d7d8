"""A stand-in for `ddgs.DDGS`, injected through `WebSearch`'s client factory: no network."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeDDGS:
    """`text()` answers `results` (ddgs' shape: title, href, body), cut at `max_results`, or
    raises `error`; every call is recorded with the thread it ran on. Calling the fake returns
    it, so it serves as its own client factory."""

    results: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)

    def __call__(self) -> FakeDDGS:
        return self

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append((query, kwargs))
        self.threads.append(threading.get_ident())
        if self.error is not None:
            raise self.error
        return self.results[: kwargs.get("max_results") or len(self.results)]


def result(title: str, href: str, body: str) -> dict[str, Any]:
    return {"title": title, "href": href, "body": body}
