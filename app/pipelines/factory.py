"""The pipelines of this gateway, built once: the built-in ones, then those of PIPELINES_FILE and
of installed plugins: each entry point of the group `ai_gateway.pipelines` names a function that
is given the settings and returns pipelines (objects with the attributes of `run.Pipeline`, such
as `graph.GraphPipeline`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points

from app.chat.engine import Engine
from app.config import ConfigError, Settings
from app.pipelines import research
from app.pipelines.agent import Agents, Tasks
from app.pipelines.agents import AgentsPipeline
from app.pipelines.catalogue import Pipelines
from app.pipelines.graph import GraphPipeline
from app.pipelines.rag_qa import RagQaPipeline
from app.pipelines.research import ResearchPipeline
from app.pipelines.run import Pipeline
from app.pipelines.spec import load_pipelines, unknown_tools
from app.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ai_gateway.pipelines"
_NEEDED = ("id", "description", "steps", "models", "answering_model", "run")


def defined_pipelines(settings: Settings) -> list[Pipeline]:
    """The pipelines of PIPELINES_FILE and of the installed plugins; a `ConfigError` for one
    that cannot run (read before the services open, so that it stops the start plainly)."""
    path = settings.pipelines.pipelines_file
    return [*(load_pipelines(path) if path is not None else ()), *_installed(settings)]


def build_pipelines(
    settings: Settings,
    engine: Engine,
    registry: ToolRegistry,
    defined: Iterable[Pipeline] = (),
    tasks: Tasks | None = None,
) -> Pipelines:
    """The built-in pipelines and the `defined` ones; their agents run here or, with `tasks`,
    by the broker's workers."""
    tools = {
        schema["function"]["name"]: schema["function"].get("description", "")
        for schema in registry.schemas()
    }
    defined = list(defined)
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
