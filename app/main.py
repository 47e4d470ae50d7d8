"""The application factory: routes, middleware and error handlers; the services are opened in
the lifespan (`app/services.py`) and reach the handlers through `app/api/deps.py`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.cors import CORSMiddleware

from app import __version__
from app.api import (
    anthropic,
    cache,
    chat,
    completions,
    debug,
    docs,
    documents,
    embeddings,
    feedback,
    health,
    keys,
    memories,
    metrics,
    models,
    pipelines,
    responses_api,
    sessions,
    tools,
)
from app.api.deps import State
from app.api.errors import install_error_handlers
from app.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.api.openapi import install_openapi
from app.chat.persona import load_persona
from app.config import Settings, load_settings
from app.ops.logging import adopt_library_loggers, install_log_context
from app.pipelines.factory import read_definitions
from app.security.auth import Access, install_auth
from app.security.keys import KeyStore
from app.services import open_services
from app.tools.context import Plugin

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    tool_plugins: Iterable[Plugin] | None = None,
    *,
    freeze_startup: bool = False,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """The gateway; `tool_plugins` replaces the built-in and installed tool plugins, and
    `span_exporter` (tests) receives the traces that OTEL_EXPORTER_OTLP_ENDPOINT would.
    `freeze_startup` (the server process's own app): what the lifespan makes (the embedder's
    torch, Chroma's client: millions of objects) is kept out of the collector's sight for good,
    so that its full passes stay short; an app of many in one process (tests) must not."""
    settings = settings or load_settings()
    install_log_context()
    persona = load_persona(settings.server.persona_path)
    definitions = read_definitions(settings)
    docs_enabled = settings.server.docs_enabled
    access = Access(
        KeyStore.from_settings(settings.security, settings.server.data_dir),
        public=docs.PATHS if docs_enabled else frozenset(),
        public_prefixes=(docs.ASSETS + "/",) if docs_enabled else (),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        opening = open_services(settings, persona, tool_plugins, span_exporter, definitions)
        async with opening as services:
            adopt_library_loggers()
            if freeze_startup:
                gc.collect()
                gc.freeze()
            yield {"services": services, "access": access}

    # FastAPI's native OpenTelemetry hooks look up the global providers on every request.
    telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = docs.documented_app(
        docs_enabled,
        title="AI gateway",
        version=__version__,
        lifespan=lifespan,
        telemetry=telemetry,
    )
    app.router.routes[:0] = chat.routes  # the hot path, matched first
    routed = (models, completions, embeddings, responses_api, health, tools, pipelines, feedback)
    for module in routed:
        app.include_router(module.router, prefix="/v1")
        app.include_router(module.router, include_in_schema=False)
    app.include_router(tools.seed_router)
    app.include_router(cache.router)
    app.include_router(debug.router)
    app.include_router(keys.router)
    app.include_router(sessions.router)
    app.include_router(anthropic.router)
    app.include_router(documents.router)
    app.include_router(memories.router)
    app.include_router(metrics.router)
    install_error_handlers(app)
    install_openapi(app)
    install_auth(app, access, settings.security)
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.server.max_request_bytes)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After", "X-Cache", "X-Tools-Dropped"],
        )
    app.add_middleware(RequestContextMiddleware, log_content=settings.server.log_content)
    return app
