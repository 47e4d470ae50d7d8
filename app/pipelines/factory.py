"""The pipelines of this gateway, built once: the built-in ones, then those of PIPELINES_FILE and
of installed plugins."""

from __future__ import annotations

from app.chat.engine import Engine
from app.config import Settings
from app.pipelines.agent import Agents, Tasks
from app.pipelines.agents import AgentsPipeline
from app.pipelines.catalogue import Pipelines
from app.pipelines.run import Pipeline
from app.tools.registry import ToolRegistry


def build_pipelines(
    settings: Settings, engine: Engine, registry: ToolRegistry, tasks: Tasks | None = None
) -> Pipelines:
    """Every pipeline, its agents run here or, with `tasks`, by the broker's workers."""
    tools = {
        schema["function"]["name"]: schema["function"].get("description", "")
        for schema in registry.schemas()
    }
    built: list[Pipeline] = [AgentsPipeline(settings.pipelines, tools)]
    providers = settings.providers
    return Pipelines(
        built, Agents(engine, tasks), providers.total_timeout, providers.request_timeout
    )
