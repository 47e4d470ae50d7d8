"""The part of the Docker Engine API the watchdog uses, on its unix socket: list the containers
with a label, read one's health, restart one."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.watchdog.probe import describe

URL_LABEL = "ai-gateway.watchdog.url"
"""A container's label naming the base URL the watchdog probes, e.g. http://gateway:9099."""

_TIMEOUT = 10.0


class EngineError(Exception):
    """The Docker Engine could not be reached, or refused a request."""


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    name: str
    labels: dict[str, str]

    @property
    def url(self) -> str | None:
        url = self.labels.get(URL_LABEL, "").strip().rstrip("/")
        return url or None


class Engine:
    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket)),
            base_url="http://docker",
            timeout=_TIMEOUT,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self, method: str, path: str, params: dict[str, str], within: float = _TIMEOUT
    ) -> Any:
        try:
            response = await self._client.request(method, path, params=params, timeout=within)
        except httpx.HTTPError as exc:
            raise EngineError(f"Docker Engine at {self.socket}: {describe(exc)}") from None
        if response.is_error:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise EngineError(f"{method} {path}: {response.status_code} {message}")
        return response.json() if response.content else None

    async def containers(self, label: str) -> list[Container]:
        """The running containers with `label` (key=value, or key)."""
        found = await self._call(
            "GET", "/containers/json", {"filters": json.dumps({"label": [label]})}
        )
        return [
            Container(
                id=item["Id"],
                name=(item.get("Names") or [item["Id"][:12]])[0].lstrip("/"),
                labels=item.get("Labels") or {},
            )
            for item in found
        ]

    async def health(self, container_id: str) -> str | None:
        """`State.Health.Status` (starting, healthy, unhealthy), or None without a health check."""
        inspected = await self._call("GET", f"/containers/{container_id}/json", {})
        health = (inspected.get("State") or {}).get("Health") or {}
        status = health.get("Status")
        return status if isinstance(status, str) and status != "none" else None

    async def restart(self, container_id: str, grace: float) -> None:
        """Restart it: SIGTERM (or its stop signal), SIGKILL after `grace` seconds, start. The
        call returns once Docker has started it again."""
        seconds = math.ceil(grace)
        await self._call(
            "POST",
            f"/containers/{container_id}/restart",
            {"t": str(seconds)},
            within=seconds + 60,
        )
