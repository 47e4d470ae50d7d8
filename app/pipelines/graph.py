"""A pipeline defined as data (PIPELINES_FILE, or a plugin): named steps, each an agent or a
plain function, each after the steps it names (by default the one before it). Steps whose
predecessors are done run at once; the last step is the answer, streamed when it is an agent.

An agent step reads the conversation, with the results of the steps it comes after added to its
prompt; a function step is given a `StepInput` and returns the text of its result (it may be a
coroutine function; a plain one runs in a thread)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import anyio

from app.chat.events import AgentStep, Event, Finish, Text
from app.errors import GatewayError, StepFailed
from app.pipelines.agent import Agent, Emit
from app.pipelines.run import Run, at_once

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepInput:
    """What a function step is given."""

    question: str
    messages: list[dict[str, Any]]
    results: Mapping[str, str]
    """The results of the steps done so far, by name."""


StepFunction = Callable[[StepInput], "str | Awaitable[str]"]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    after: tuple[str, ...]
    agent: Agent | None = None
    function: StepFunction | None = None
    ref: str = ""
    """The function's `module:name`, as configured."""
    at: str = ""
    """Where it is defined: file and line."""


@dataclass(frozen=True, slots=True)
class GraphPipeline:
    id: str
    description: str
    graph: tuple[Step, ...]

    @property
    def answering_model(self) -> str:
        last = self.graph[-1].agent
        return "" if last is None else last.model

    def models(self) -> list[str]:
        return [step.agent.model for step in self.graph if step.agent is not None]

    def steps(self) -> list[dict[str, Any]]:
        described: list[dict[str, Any]] = []
        for step in self.graph:
            entry: dict[str, Any] = {"name": step.name, "after": list(step.after)}
            if step.agent is not None:
                entry |= {
                    "kind": "agent",
                    "model": step.agent.model,
                    "tools": list(step.agent.tools),
                }
            else:
                entry |= {"kind": "function", "function": step.ref}
            described.append(entry)
        return described

    async def run(self, run: Run) -> AsyncIterator[Event]:
        results: dict[str, str] = {}
        *work, last = self.graph
        waiting = list(work)
        while waiting:
            ready = [step for step in waiting if all(name in results for name in step.after)]
            waiting = [step for step in waiting if step not in ready]
            done: list[str] = [""] * len(ready)
            async for event in at_once([self._job(run, step, results) for step in ready], done):
                yield event
            results.update(zip((step.name for step in ready), done, strict=True))
        if last.agent is None:
            async for event in self._finish_with_function(run, last, results):
                yield event
            return
        agent = _informed(last.agent, last, results)
        async for event in run.answer(agent, run.messages):
            yield event
        async for event in run.follow_ups():
            yield event

    def _job(
        self, run: Run, step: Step, results: dict[str, str]
    ) -> Callable[[Emit], Awaitable[str]]:
        async def job(emit: Emit) -> str:
            if step.agent is not None:
                agent = _informed(step.agent, step, results)
                return (await run.step(agent, run.messages, emit)).text
            started = time.perf_counter()
            emit(AgentStep(step.name, "start"))
            text = await _call(step, StepInput(run.question, run.messages, dict(results)))
            emit(AgentStep(step.name, "end", time.perf_counter() - started))
            return text

        return job

    async def _finish_with_function(
        self, run: Run, step: Step, results: dict[str, str]
    ) -> AsyncIterator[Event]:
        started = time.perf_counter()
        yield AgentStep(step.name, "start")
        text = await _call(step, StepInput(run.question, run.messages, dict(results)))
        run.answered = text
        yield Text(text)
        yield AgentStep(step.name, "end", time.perf_counter() - started)
        yield Finish("stop")


def _informed(agent: Agent, step: Step, results: Mapping[str, str]) -> Agent:
    """`agent` with the results of the steps it comes after added to its prompt."""
    if not step.after:
        return agent
    earlier = "\n\n".join(f"### {name}\n{results[name]}" for name in step.after)
    return replace(agent, prompt=f"{agent.prompt}\n\nResults of earlier steps:\n{earlier}")


async def _call(step: Step, given: StepInput) -> str:
    function = step.function
    assert function is not None
    try:
        if inspect.iscoroutinefunction(function):
            return str(await function(given))
        return str(await anyio.to_thread.run_sync(function, given))
    except GatewayError:
        raise
    except Exception as exc:  # the user's function may fail in any way
        log.exception("pipeline step %s (%s) failed", step.name, step.ref)
        raise StepFailed(f"step {step.name!r} failed: {type(exc).__name__}: {exc}") from None
