"""A webhook receiver for the watchdog's alerts: keeps every JSON body posted to it, in order.
Serve `receiver.app` with `tests.fakes.serve.serve`; `status` is what it answers."""

from __future__ import annotations

import threading
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class Webhook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: list[dict[str, Any]] = []
        self.status = 200
        self.app = Starlette(routes=[Route("/hook", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self._bodies.append(body)
        return Response(status_code=self.status)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._bodies)

    def of(self, alert: str, state: str | None = None) -> list[dict[str, Any]]:
        """The bodies of `alert` (in `state`, if given)."""
        return [
            body
            for body in self.bodies
            if body["alert"] == alert and (state is None or body["state"] == state)
        ]
