"""What a tool plugin is given: a way to register tools and the resources they may share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from app import __version__
from app.config import ToolSettings
from app.tools.base import Tool, ToolFunction

USER_AGENT = f"ai-gateway/{__version__} (server-side tools)"


class Register(Protocol):
    def __call__(self, function: ToolFunction, name: str | None = None) -> Tool: ...


@dataclass
class ToolContext:
    """What tools may share: their settings, one pooled HTTP client, and a place to leave
    clean-up work for shutdown."""

    settings: ToolSettings
    connect_timeout: float
    http: httpx.AsyncClient
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: ToolSettings, connect_timeout: float) -> ToolContext:
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.tool_timeout, connect=connect_timeout),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
            trust_env=False,
        )
        return cls(settings, connect_timeout, http)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
        await self.http.aclose()


Plugin = Callable[[Register, ToolContext], None]
