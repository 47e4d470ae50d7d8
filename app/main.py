"""The application factory: every shared resource is opened in the lifespan and closed there."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.cors import CORSMiddleware

from app import __version__
from app.api import cache, chat, embeddings, health, models, sessions, tools
from app.api.errors import install_error_handlers
from app.api.middleware import RequestContextMiddleware
from app.api.openapi import install_openapi
from app.chat.persona import load_persona
from app.chat.service import ChatService
from app.config import Settings, load_settings
from app.memory.cache import Caches
from app.ops.health import HealthChecker
from app.ops.logging import install_log_context
from app.ops.redis import open_redis
from app.providers.base_prompt import PersonaText
from app.providers.factory import build_providers
from app.providers.router import Router
from app.security.auth import install_auth
from app.tools.context import Plugin, ToolContext
from app.tools.registry import load_registry

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, tool_plugins: Iterable[Plugin] | None = None
) -> FastAPI:
    """The gateway; `tool_plugins` replaces the built-in and installed tool plugins."""
    settings = settings or load_settings()
    install_log_context()
    persona = load_persona(settings.persona_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, ttl_dns_cache=300, keepalive_timeout=60),
            trust_env=False,
        )
        brief = PersonaText(persona.name, persona.instructions())
        providers, skipped = build_providers(settings, session, brief)
        router = Router(providers, settings)
        redis, embedded_redis = await open_redis(settings)
        log.info("Redis: %s", "embedded, " + embedded_redis.url if embedded_redis else "REDIS_URL")
        checker = HealthChecker(router, redis)
        _log_providers(await checker.report(), skipped)
        _check_model_ids(settings, skipped)
        tool_context = ToolContext.open(settings)
        caches = Caches.open(redis, settings)
        registry = load_registry(tool_context, tool_plugins, caches.tools)
        log.info("tools enabled: %s", ", ".join(registry.enabled) or "none")
        if persona.instructions():
            log.info("persona %r is applied to every turn", persona.name)
        if not settings.api_keys and settings.api_keys_file is None:
            log.warning("API_KEYS is not set: the gateway is open to anyone who can reach it")
        try:
            yield {
                "chat": ChatService(router, persona, registry, settings, caches),
                "router": router,
                "health": checker,
                "tools": registry,
                "redis": redis,
                "settings": settings,
            }
        finally:
            await tool_context.aclose()
            await redis.aclose()
            if embedded_redis is not None:
                await embedded_redis.stop()
            for provider in providers:
                await provider.aclose()
            await session.close()

    # FastAPI's native OpenTelemetry hooks look up the global providers on every request.
    telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="AI gateway", version=__version__, lifespan=lifespan, telemetry=telemetry)
    app.router.routes.extend(chat.routes)
    for module in (models, embeddings, health, tools):
        app.include_router(module.router, prefix="/v1")
        app.include_router(module.router, include_in_schema=False)
    app.include_router(tools.seed_router)
    app.include_router(cache.router)
    app.include_router(sessions.router)
    install_error_handlers(app)
    install_openapi(app)
    install_auth(app, settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After", "X-Cache"],
        )
    app.add_middleware(RequestContextMiddleware)
    return app


def _check_model_ids(settings: Settings, skipped: dict[str, str]) -> None:
    """Warn about DEFAULT_MODEL and FALLBACK_MODELS ids that name a skipped provider."""
    for model_id in filter(None, [settings.default_model, *settings.fallback_models]):
        prefix = model_id.partition("/")[0]
        if prefix in skipped:
            log.warning("%s names provider %s, which is not active", model_id, prefix)


def _log_providers(report: dict[str, Any], skipped: dict[str, str]) -> None:
    for name, state in report["providers"].items():
        reach = "reachable" if state["status"] == "up" else "NOT reachable now"
        log.info("provider %s: active, %s (%s)", name, reach, state["detail"])
    for name, reason in skipped.items():
        log.info("provider %s: skipped, %s", name, reason)
    if not report["providers"]:
        log.error("no provider is active: every chat request will fail")
