"""The composition root: every service the gateway runs on, built once in the lifespan from the
settings and closed there, in reverse order."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import redis.asyncio as aioredis

from app.broker import TaskClient
from app.broker.backend import shown_url
from app.chat.engine import Engine
from app.chat.grounding import Grounder
from app.chat.persona import Persona
from app.chat.stateful import Conversations
from app.chat.summary import Background, Folder
from app.config import Settings
from app.knowledge.directory import Jobs
from app.knowledge.service import Knowledge, open_knowledge
from app.ops.health import HealthChecker
from app.ops.metrics import Metrics
from app.ops.observers import observers
from app.pipelines.catalogue import Pipelines
from app.pipelines.factory import Definitions, build_pipelines, read_definitions
from app.providers.base_prompt import PersonaText
from app.providers.factory import build_providers, on_by_default
from app.providers.router import Router
from app.state.cache import Caches
from app.state.feedback import FeedbackStore, Recorder
from app.state.ratelimit import RateLimiter
from app.state.redis import open_redis
from app.state.responses import ResponseStore
from app.state.sessions import SessionStore
from app.tools.context import Plugin, ToolContext
from app.tools.registry import ToolRegistry, load_registry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from app.ops.tracing import Tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    router: Router
    redis: aioredis.Redis
    caches: Caches
    sessions: SessionStore
    responses: ResponseStore
    feedback: FeedbackStore
    recorder: Recorder
    """The answers' records, for their ratings."""
    limiter: RateLimiter
    registry: ToolRegistry
    engine: Engine
    conversations: Conversations
    health: HealthChecker
    knowledge: Knowledge
    jobs: Jobs
    pipelines: Pipelines
    metrics: Metrics | None
    """None when METRICS_ENABLED is false."""
    started: float
    """time.monotonic() when the services were up."""
    started_at: int
    """The Unix time of the same moment."""


@asynccontextmanager
async def open_services(
    settings: Settings,
    persona: Persona,
    tool_plugins: Iterable[Plugin] | None = None,
    span_exporter: SpanExporter | None = None,
    definitions: Definitions | None = None,
) -> AsyncIterator[Services]:
    """Every service, open; `tool_plugins` replaces the built-in and installed tool plugins,
    `span_exporter` the OTLP collector (and turns tracing on); `definitions` are the pipelines'
    files and plugins, read already (else read here)."""
    async with AsyncExitStack() as stack:
        tracing = _tracing(settings, span_exporter)
        if tracing is not None:
            stack.push_async_callback(tracing.aclose)  # last: it sends every span made before
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, ttl_dns_cache=300, keepalive_timeout=60),
            trust_env=False,
        )
        stack.push_async_callback(session.close)
        brief = PersonaText(persona.name, persona.instructions())
        providers, skipped = build_providers(settings.providers, session, brief)
        for provider in providers:
            stack.push_async_callback(provider.aclose)
        metrics = Metrics() if settings.ops.metrics_enabled else None
        observing = observers(metrics, tracing)
        router = Router(providers, settings.providers, skipped, attempts=observing)
        redis, embedded_redis = await open_redis(settings.state, settings.server.data_dir)
        if embedded_redis is not None:
            stack.push_async_callback(embedded_redis.stop)
        stack.push_async_callback(redis.aclose)
        log.info("Redis: %s", "embedded, " + embedded_redis.url if embedded_redis else "REDIS_URL")
        knowledge = await stack.enter_async_context(
            open_knowledge(settings.knowledge, settings.server.data_dir, router)
        )
        health = HealthChecker(
            router, redis, by_default=on_by_default(settings.providers), knowledge=knowledge
        )
        _log_providers(await health.report(), skipped)
        _check_model_ids(settings, skipped)
        tool_context = ToolContext.open(settings.tools, settings.providers.connect_timeout)
        stack.push_async_callback(tool_context.aclose)
        caches = Caches.open(redis, settings.state)
        registry = load_registry(tool_context, tool_plugins, caches.tools)
        log.info("tools enabled: %s", ", ".join(registry.enabled) or "none")
        if persona.instructions():
            log.info("persona %r is applied to every turn", persona.name)
        sessions = SessionStore(
            redis,
            ttl=settings.state.session_ttl,
            max_messages=settings.state.max_session_messages,
        )
        background = Background()
        stack.push_async_callback(background.aclose)
        jobs = Jobs()
        stack.push_async_callback(jobs.aclose)
        engine = Engine(
            router=router,
            persona=persona,
            registry=registry,
            caches=caches,
            providers=settings.providers,
            tools=settings.tools,
            grounder=Grounder(
                knowledge=knowledge,
                router=router,
                background=background,
                settings=settings.knowledge,
                token_budget=settings.state.token_budget,
                side_timeout=settings.providers.request_timeout,
                observers=observing,
            ),
            observers=observing,
        )
        tasks = None
        if settings.pipelines.broker_url:
            tasks = TaskClient(settings.pipelines)
            await tasks.open()
            stack.push_async_callback(tasks.close)
            log.info("pipeline steps go to the workers of %s", shown_url(settings.pipelines))
        catalogue = build_pipelines(
            settings,
            engine,
            registry,
            definitions=definitions or read_definitions(settings),
            cache=caches.intent,
            embedder=knowledge.embedder,
            background=background,
            tasks=tasks,
        )
        engine.pipelines = catalogue
        folder = Folder(
            router,
            sessions,
            background,
            token_budget=settings.state.token_budget,
            timeout=settings.providers.total_timeout,
        )
        limiter = RateLimiter(redis, settings.security.rate_limit_fail_open)
        feedback = FeedbackStore(redis, ttl=settings.state.feedback_ttl)
        recorder = Recorder(feedback)
        stack.push_async_callback(recorder.aclose)
        if metrics is not None:
            metrics.watch(router, caches, limiter, knowledge)
        yield Services(
            settings=settings,
            router=router,
            redis=redis,
            caches=caches,
            sessions=sessions,
            responses=ResponseStore(redis, ttl=settings.state.responses_ttl),
            feedback=feedback,
            limiter=limiter,
            registry=registry,
            engine=engine,
            conversations=Conversations(
                engine=engine,
                store=sessions,
                folder=folder,
                settings=settings.state,
                side_timeout=settings.providers.request_timeout,
            ),
            health=health,
            knowledge=knowledge,
            jobs=jobs,
            pipelines=catalogue,
            recorder=recorder,
            metrics=metrics,
            started=time.monotonic(),
            started_at=int(time.time()),
        )


def _tracing(settings: Settings, exporter: SpanExporter | None) -> Tracing | None:
    if not (settings.ops.otel_exporter_otlp_endpoint or exporter is not None):
        return None
    from app.ops.tracing import open_tracing  # OpenTelemetry's SDK, only when tracing is on

    return open_tracing(settings.ops, exporter)


def _check_model_ids(settings: Settings, skipped: dict[str, str]) -> None:
    """Warn about DEFAULT_MODEL and FALLBACK_MODELS ids that name a skipped provider."""
    section = settings.providers
    for model_id in filter(None, [section.default_model, *section.fallback_models]):
        prefix = model_id.partition("/")[0]
        if prefix in skipped:
            log.warning("%s names provider %s, which is not active", model_id, prefix)


_REACH = {
    "up": "reachable",
    "unreachable": "not running at its default URL (not counted against health)",
}


def _log_providers(report: dict[str, Any], skipped: dict[str, str]) -> None:
    for name, state in report["providers"].items():
        reach = _REACH.get(state["status"], "NOT reachable now")
        log.info("provider %s: active, %s (%s)", name, reach, state["detail"])
    for name, reason in skipped.items():
        log.info("provider %s: skipped, %s", name, reason)
    if not report["providers"]:
        log.error("no provider is active: every chat request will fail")
