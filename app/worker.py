"""`python -m app worker`: runs the pipelines' steps that gateways publish on BROKER_URL, with
the gateway's own providers, tools and caches (the same settings), until SIGTERM or SIGINT.

A worker serves no HTTP, and needs no documents or memories: a step's grounding is placed in
its messages by the gateway that asked. It needs REDIS_URL, since it shares the gateway's
caches (an embedded Redis would be its own)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from app.broker import serve
from app.chat.persona import load_persona
from app.config import ConfigError, Settings
from app.pipelines.agent import TASK_KIND, handle
from app.services import open_services


async def run_worker(settings: Settings) -> None:
    if not settings.pipelines.broker_url:
        raise ConfigError("python -m app worker needs BROKER_URL: the broker it takes steps from")
    if not settings.state.redis_url:
        raise ConfigError("python -m app worker needs REDIS_URL: it shares the gateway's caches")
    own = replace(
        settings,
        pipelines=settings.pipelines.model_copy(update={"broker_url": ""}),  # its steps run here
        knowledge=settings.knowledge.model_copy(
            update={"rag_enabled": False, "memory_enabled": False}
        ),
    )
    async with open_services(own, load_persona(settings.server.persona_path)) as services:
        await serve(settings.pipelines, {TASK_KIND: partial(handle, services.engine)})
