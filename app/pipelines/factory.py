"""The pipelines of this gateway, built once: the built-in ones, then those of PIPELINES_FILE and
of installed plugins: each entry point of the group `ai_gateway.pipelines` names a function that
is given the settings and returns pipelines (objects with the attributes of `run.Pipeline`, such
as `graph.GraphPipeline`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from app.chat.engine import Engine
from app.chat.summary import Background
from app.config import ConfigError, Settings
from app.knowledge.embedder import Embedder
from app.pipelines import research
from app.pipelines.agent import Agents, Tasks
from app.pipelines.agents import AgentsPipeline
from app.pipelines.catalogue import Pipelines
from app.pipelines.classifier import Classifier
from app.pipelines.graph import GraphPipeline
from app.pipelines.intents import IntentSet, load_intents
from app.pipelines.rag_qa import RagQaPipeline
from app.pipelines.research import ResearchPipeline
from app.pipelines.routing import RouterPipeline
from app.pipelines.run import Pipeline
from app.pipelines.spec import load_pipelines, unknown_tools
from app.state.cache import IntentCache
from app.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ai_gateway.pipelines"
CLASSIFY_MAX_TOKENS = 8
"""An intent's name, asked of the model."""
_NEEDED = ("id", "description", "steps", "models", "answering_model", "run")


@dataclass(frozen=True, slots=True)
class Definitions:
    """What the pipelines are made of that is read from files and plugins: read before the
    services open, so that a mistake stops the start plainly (a `ConfigError`)."""

    pipelines: list[Pipeline]
    """Those of PIPELINES_FILE and of the installed plugins."""
    intents: IntentSet
    """The router's: INTENTS_FILE, else the shipped set."""


def read_definitions(settings: Settings) -> Definitions:
    path = settings.pipelines.pipelines_file
    defined = [*(load_pipelines(path) if path is not None else ()), *_installed(settings)]
    return Definitions(defined, load_intents(settings.pipelines.intents_file))


def build_pipelines(
    settings: Settings,
    engine: Engine,
    registry: ToolRegistry,
    *,
    definitions: Definitions,
    cache: IntentCache,
    embedder: Embedder | None,
    background: Background,
    tasks: Tasks | None = None,
) -> Pipelines:
    """The built-in pipelines and the defined ones; their agents run here or, with `tasks`,
    by the broker's workers. The router's classifier uses `embedder` when there is one, and
    INTENT_MODEL, when set, for what stays ambiguous; with INTENT_WARMUP it is prepared at once
    in `background`."""
    tools = {
        schema["function"]["name"]: schema["function"].get("description", "")
        for schema in registry.schemas()
    }
    defined = definitions.pipelines
    graphs = [pipeline for pipeline in defined if isinstance(pipeline, GraphPipeline)]
    for warning in unknown_tools(graphs, tools):
        log.warning("%s", warning)
    built: list[Pipeline] = [AgentsPipeline(settings.pipelines, tools)]
    answering = settings.pipelines.synthesizer_model
    if all(name in tools for name in research.NEEDS):
        built.append(ResearchPipeline(registry, answering))
    if settings.knowledge.rag_enabled:
        built.append(RagQaPipeline(answering))
    built += defined
    providers = settings.providers
    router = engine.router

    judge = settings.pipelines.intent_model

    async def ask(messages: list[dict[str, Any]]) -> str:
        route = await router.resolve(judge)
        return await router.ask(
            route, messages, max_tokens=CLASSIFY_MAX_TOKENS, within=providers.request_timeout
        )

    intents = definitions.intents
    classifier = Classifier(
        intents, embedder=embedder, ask=ask if judge else None, model=judge, cache=cache
    )
    if settings.pipelines.intent_warmup and embedder is not None:
        background.start("intent classifier", classifier.prepare)
    by_id = {pipeline.id: pipeline for pipeline in built}
    for intent in intents:
        wanted = intent.target.value
        if intent.target.kind == "pipeline" and (wanted not in by_id or wanted == "router"):
            log.warning(
                "%s: intent %s routes to pipeline %r, which is not available here; its "
                "messages go to the answering model",
                intents.source,
                intent.name,
                wanted,
            )
    built.append(RouterPipeline(classifier, by_id.get, answering, settings.ops.alert_webhook_url))
    return Pipelines(
        built, Agents(engine, tasks), providers.total_timeout, providers.request_timeout
    )


def _installed(settings: Settings) -> list[Pipeline]:
    found: list[Pipeline] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            made = list(point.load()(settings))
        except Exception as exc:  # a plugin may fail in any way
            raise ConfigError(
                f"pipeline plugin {point.name} ({point.value}) failed: {type(exc).__name__}: {exc}"
            ) from None
        for pipeline in made:
            missing = [name for name in _NEEDED if not hasattr(pipeline, name)]
            if missing:
                raise ConfigError(
                    f"pipeline plugin {point.name} ({point.value}) gave {pipeline!r}, which has "
                    f"no {', '.join(missing)}"
                )
            found.append(pipeline)
    return found
