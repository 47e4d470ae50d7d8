"""HTTP probes of a gateway: `/health/live` and `/health/ready` (is it up?), `/health` (how
are its dependencies?)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import httpx

Status = Literal["up", "not ready", "down"]

_UP = frozenset({"up", "ok", "healthy", "ready"})


def describe(exc: Exception) -> str:
    """An HTTP failure in a few words: httpx's timeouts have no message of their own."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Probe:
    """`up`: live and ready; `not ready`: live, but /health/ready answers 503 (a dependency is
    down, which a restart does not cure); `down`: no answer in time, or any other status."""

    status: Status
    detail: str


async def _get(client: httpx.AsyncClient, url: str, within: float) -> httpx.Response | str:
    try:
        return await client.get(url, timeout=within)
    except httpx.HTTPError as exc:
        return describe(exc)


async def probe(client: httpx.AsyncClient, base_url: str, within: float) -> Probe:
    """GET /health/live and /health/ready at once, each within `within` seconds."""
    live, ready = await asyncio.gather(
        _get(client, f"{base_url}/health/live", within),
        _get(client, f"{base_url}/health/ready", within),
    )
    if isinstance(live, str) or live.status_code != 200:
        return Probe("down", f"/health/live: {_said(live)}")
    if isinstance(ready, str) or ready.status_code not in (200, 503):
        return Probe("down", f"/health/ready: {_said(ready)}")
    if ready.status_code == 503:
        return Probe("not ready", "/health/ready: 503")
    return Probe("up", "live and ready")


def _said(answer: httpx.Response | str) -> str:
    return answer if isinstance(answer, str) else f"HTTP {answer.status_code}"


@dataclass(frozen=True, slots=True)
class Dependency:
    """One dependency from /health: `up`, `down`, or `absent` (a provider on only by default
    with nothing where it would be: not a failure)."""

    status: Literal["up", "down", "absent"]
    detail: str


async def dependencies(
    client: httpx.AsyncClient, base_url: str, within: float
) -> dict[str, Dependency] | None:
    """Each dependency /health names (Redis, Chroma, the embedder, each provider), or None when
    /health gives no report."""
    answer = await _get(client, f"{base_url}/health", within)
    if isinstance(answer, str) or answer.status_code not in (200, 503):
        return None
    try:
        report = answer.json()
    except ValueError:
        return None
    return read_dependencies(report) if isinstance(report, dict) else None


def read_dependencies(report: dict[str, Any]) -> dict[str, Dependency]:
    """The entries of a /health report that have a `status` (`redis`, `chromadb`,
    `embeddings`, …), and each of its `providers`."""
    entries = {k: v for k, v in report.items() if k != "providers"}
    providers = report.get("providers")
    if isinstance(providers, dict):
        entries.update(providers)
    found = {}
    for name, entry in entries.items():
        if isinstance(entry, dict) and isinstance(entry.get("status"), str):
            status = entry["status"].lower()
            state: Literal["up", "down", "absent"] = (
                "up" if status in _UP else "absent" if status == "unreachable" else "down"
            )
            detail = entry.get("details", entry.get("detail", ""))
            found[name] = Dependency(state, str(detail) if detail is not None else "")
    return found
