"""The part of the Docker Engine API the watchdog uses, served on a unix socket (with
`tests.fakes.serve.serve(engine.app, uds=path)`): `GET /containers/json` with a `label` filter,
`GET /containers/{id}/json` (State.Health.Status) and `POST /containers/{id}/restart?t=`.

Each container's `health` is what inspecting it says (None: no health check); a restart is
recorded (id, t) and sets `health` to `after_restart` when that is given, then calls
`on_restart` (a test's hook, such as resuming a stopped process)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class FakeContainer:
    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    health: str | None = "healthy"
    after_restart: str | None = None
    on_restart: Callable[[], None] | None = None


class FakeDocker:
    def __init__(self, *containers: FakeContainer) -> None:
        self.containers = {container.id: container for container in containers}
        self._lock = threading.Lock()
        self._restarts: list[tuple[str, str]] = []
        self.filters: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/containers/json", self._list),
                Route("/containers/{id}/json", self._inspect),
                Route("/containers/{id}/restart", self._restart, methods=["POST"]),
            ]
        )

    @property
    def restarts(self) -> list[tuple[str, str]]:
        """(container id, the `t` asked for), in order."""
        with self._lock:
            return list(self._restarts)

    def restarts_of(self, container_id: str) -> int:
        return sum(1 for restarted, _ in self.restarts if restarted == container_id)

    async def _list(self, request: Request) -> Response:
        filters = json.loads(request.query_params.get("filters", "{}"))
        self.filters.append(filters)
        wanted = [item.partition("=") for item in filters.get("label", [])]

        def labelled(container: FakeContainer) -> bool:
            return all(
                key in container.labels and (not sep or container.labels[key] == value)
                for key, sep, value in wanted
            )

        return JSONResponse(
            [
                {"Id": c.id, "Names": [f"/{c.name}"], "State": "running", "Labels": c.labels}
                for c in self.containers.values()
                if labelled(c)
            ]
        )

    async def _inspect(self, request: Request) -> Response:
        container = self.containers.get(request.path_params["id"])
        if container is None:
            return JSONResponse({"message": "No such container"}, status_code=404)
        state: dict[str, Any] = {"Status": "running", "Running": True}
        if container.health is not None:
            state["Health"] = {"Status": container.health, "FailingStreak": 0, "Log": []}
        return JSONResponse({"Id": container.id, "Name": f"/{container.name}", "State": state})

    async def _restart(self, request: Request) -> Response:
        container = self.containers.get(request.path_params["id"])
        if container is None:
            return JSONResponse({"message": "No such container"}, status_code=404)
        with self._lock:
            self._restarts.append((container.id, request.query_params.get("t", "")))
        if container.after_restart is not None:
            container.health = container.after_restart
        if container.on_restart is not None:
            container.on_restart()
        return Response(status_code=204)
