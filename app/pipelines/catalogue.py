"""The pipelines the gateway runs, by id: the built-in ones, those of PIPELINES_FILE and those
installed as plugins. Each is the model `pipeline/<id>`; the engine hands such a turn here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from app.chat.context import last_user_text, text_of
from app.chat.events import Event, Text, Timings, Usage
from app.chat.grounding import Placed
from app.chat.turn import Turn
from app.errors import InvalidRequest, ModelNotFound
from app.pipelines.agent import Agents
from app.pipelines.run import Pipeline, Run
from app.providers.router import Needs, Route

PREFIX = "pipeline/"


class Pipelines:
    def __init__(
        self,
        pipelines: Iterable[Pipeline],
        agents: Agents,
        total_timeout: float,
        side_timeout: float,
    ) -> None:
        self._by_id: dict[str, Pipeline] = {}
        for pipeline in pipelines:
            if pipeline.id in self._by_id:
                raise ValueError(f"two pipelines are named {pipeline.id!r}")
            self._by_id[pipeline.id] = pipeline
        self._agents = agents
        self._total_timeout = total_timeout
        self._side_timeout = side_timeout

    def listed(self) -> list[Pipeline]:
        return list(self._by_id.values())

    def get(self, pipeline_id: str) -> Pipeline:
        pipeline = self._by_id.get(pipeline_id)
        if pipeline is None:
            raise ModelNotFound(f"there is no pipeline '{pipeline_id}'; GET /pipelines lists them")
        return pipeline

    def answering_model(self, model: str | None) -> str | None:
        if not model or not model.startswith(PREFIX):
            return None
        return self.get(model.removeprefix(PREFIX)).answering_model

    async def open(
        self, body: dict[str, Any], needs: Needs, route: Route, placed: Placed | None
    ) -> Turn:
        pipeline = self.get(str(body["model"]).removeprefix(PREFIX))
        if needs.choices > 1:
            raise InvalidRequest("a pipeline gives one answer: n must be 1", param="n")
        return self.start(pipeline, body["messages"], needs, route, placed)

    def start(
        self,
        pipeline: Pipeline,
        messages: list[dict[str, Any]],
        needs: Needs,
        route: Route,
        placed: Placed | None,
    ) -> Turn:
        """`pipeline`'s turn about `messages`, grounded with `placed`, its answer from
        `route`."""
        run = Run(
            pipeline=pipeline.id,
            messages=messages,
            question=last_user_text(messages) or _last_said(messages),
            route=route,
            needs=needs,
            agents=self._agents,
            deadline=time.time() + self._total_timeout,
            side_timeout=self._side_timeout,
            placed=placed,
        )
        return Turn(PREFIX + pipeline.id, _events(pipeline, run), lists_tools=True)


async def _events(pipeline: Pipeline, run: Run) -> AsyncIterator[Event]:
    started = time.perf_counter()
    first = 0.0
    async for event in pipeline.run(run):
        if type(event) is Usage:  # a step's: the run counts them all
            continue
        if type(event) is Text and not first:
            first = time.perf_counter()
        yield event
    yield run.usage
    total = time.perf_counter() - started
    yield Timings(round((first - started if first else total) * 1000, 1), round(total * 1000, 1))


def _last_said(messages: list[dict[str, Any]]) -> str:
    return next((text_of(m) for m in reversed(messages) if m.get("role") == "user"), "")
