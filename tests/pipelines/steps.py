"""Function steps the pipeline tests name in their YAML files."""

from __future__ import annotations

import asyncio
import threading

from app.config import Settings
from app.pipelines.graph import GraphPipeline, Step, StepInput

CALLS: list[tuple[str, float]] = []


def count_words(given: StepInput) -> str:
    """A plain function: it runs in a thread, not on the event loop."""
    assert threading.current_thread() is not threading.main_thread()
    return f"{sum(len(text.split()) for text in given.results.values())} words"


async def shout(given: StepInput) -> str:
    await asyncio.sleep(0)
    return given.question.upper()


def broken(given: StepInput) -> str:
    raise RuntimeError("this step always fails")


NOT_A_FUNCTION = 42


def plugin_pipelines(settings: Settings) -> list[GraphPipeline]:
    """An entry point of `ai_gateway.pipelines`: one pipeline whose step shouts."""
    step = Step("shout", (), function=shout, ref="tests.pipelines.steps:shout")
    return [GraphPipeline("plugged", f"from a plugin ({settings.server.port})", (step,))]


def broken_plugin(settings: Settings) -> list[GraphPipeline]:
    raise ValueError("cannot make pipelines")
