"""One chat turn, with no HTTP in sight: persona, routing, and the answer's stream."""

from __future__ import annotations

from typing import Any

from app.chat.persona import Persona
from app.chat.turn import Turn
from app.providers.router import Needs, Router


class ChatService:
    def __init__(self, router: Router, persona: Persona, total_timeout: float) -> None:
        self._router = router
        self._persona = persona
        self._total_timeout = total_timeout

    async def start(self, body: dict[str, Any], *, include_usage: bool, needs: Needs) -> Turn:
        """Route `body` (a validated OpenAI chat request) and wait for the answer's first chunk,
        so that failures before it can still be answered with an HTTP status."""
        upstream = {**body, "messages": self._persona.apply(body["messages"])}
        opened = await self._router.open_stream(body.get("model"), upstream, needs)
        return Turn(opened, include_usage=include_usage, total_timeout=self._total_timeout)
