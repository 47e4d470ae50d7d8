"""One agent's step: a role's prompt, a model, the gateway tools it may use and a token budget,
asked about a conversation. `Agents` runs a step here, through the engine, or, with a broker, as
a task that a worker (`python -m app worker`) runs the same way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from app.chat.context import counter_for
from app.chat.engine import Engine
from app.chat.events import (
    Event,
    Text,
    ToolFinished,
    ToolStarted,
    Usage,
    from_record,
    to_record,
)
from app.errors import TaskTimeout
from app.providers.router import Needs
from app.tools.registry import ToolOutcome

Emit = Callable[[Event], None]
"""Where a step sends the events others may watch as they happen (its tools running)."""

TASK_KIND = "agent"


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    prompt: str
    """The role: the system message the agent's model reads first."""
    model: str = ""
    """The model it asks; empty: DEFAULT_MODEL."""
    tools: tuple[str, ...] = ()
    """The gateway's tools it may use (those enabled)."""
    max_tokens: int = 1024
    schema: Mapping[str, Any] | None = None
    """The JSON schema its reply must follow, asked of the model as `response_format`."""

    def body(self, messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "system", "content": self.prompt}, *messages]
            if self.prompt
            else messages,
            "max_tokens": self.max_tokens,
        }
        if self.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": self.name, "schema": dict(self.schema), "strict": False},
            }
        return body


@dataclass(slots=True)
class Result:
    """What a step gave: its text, the model that answered, the tokens, the tools it ran."""

    text: str
    model: str
    usage: Usage
    outcomes: list[ToolOutcome] = field(default_factory=list)
    seconds: float = 0.0


class Tasks(Protocol):
    """A broker's client (`broker.TaskClient`): a task of `kind` run by a worker, its reply by
    `deadline` (Unix time)."""

    async def request(
        self, kind: str, payload: dict[str, Any], deadline: float
    ) -> dict[str, Any]: ...


def payload(agent: Agent, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"agent": {**asdict(agent), "tools": list(agent.tools)}, "messages": messages}


def from_payload(data: dict[str, Any]) -> tuple[Agent, list[dict[str, Any]]]:
    agent = data["agent"]
    return Agent(**{**agent, "tools": tuple(agent["tools"])}), data["messages"]


def reply(result: Result) -> dict[str, Any]:
    return {
        "text": result.text,
        "model": result.model,
        "usage": to_record(result.usage),
        "outcomes": [asdict(outcome) for outcome in result.outcomes],
        "seconds": result.seconds,
    }


def from_reply(data: dict[str, Any]) -> Result:
    usage = from_record(data["usage"])
    assert isinstance(usage, Usage)
    outcomes = [ToolOutcome(**outcome) for outcome in data["outcomes"]]
    return Result(data["text"], data["model"], usage, outcomes, data["seconds"])


class Agents:
    """Runs agents' steps: as tasks on the broker when there is one, else here."""

    def __init__(self, engine: Engine, tasks: Tasks | None = None) -> None:
        self._engine = engine
        self._tasks = tasks

    @property
    def engine(self) -> Engine:
        return self._engine

    async def run(
        self, agent: Agent, messages: list[dict[str, Any]], deadline: float, emit: Emit
    ) -> Result:
        """`agent`'s whole answer about `messages`, by `deadline` (Unix time)."""
        if self._tasks is None:
            timeout = asyncio.timeout(deadline - time.time())
            try:
                async with timeout:
                    return await run_here(self._engine, agent, messages, emit)
            except TimeoutError:
                if not timeout.expired():
                    raise
                raise TaskTimeout(f"the {agent.name} step did not finish in time") from None
        answer = await self._tasks.request(TASK_KIND, payload(agent, messages), deadline)
        result = from_reply(answer)
        for number, outcome in enumerate(result.outcomes):  # seen only now, in order
            call_id = f"{agent.name}-{number}"
            emit(ToolStarted(call_id, outcome.name, outcome.arguments))
            emit(ToolFinished(call_id, outcome))
        return result


async def run_here(
    engine: Engine, agent: Agent, messages: list[dict[str, Any]], emit: Emit | None = None
) -> Result:
    """`agent`'s whole answer about `messages`, asked through `engine` in this process."""
    started = time.perf_counter()
    route = await engine.router.resolve(agent.model or None)
    body = agent.body(messages, route.id)
    narrow = engine.limited(agent.tools, persona=False)  # a step's words are not the answer
    turn = await narrow.open_chat(body, Needs(whole=True), route)
    parts: list[str] = []
    outcomes: list[ToolOutcome] = []
    usage: Usage | None = None
    async for event in turn.source:
        match event:
            case Text(text=text, choice=0):
                parts.append(text)
            case ToolStarted():
                if emit is not None:
                    emit(event)
            case ToolFinished(outcome=outcome):
                outcomes.append(outcome)
                if emit is not None:
                    emit(event)
            case Usage():
                usage = event
            case _:
                pass
    text = "".join(parts)
    if usage is None or not usage.total_tokens:
        counter = counter_for(route.id)
        prompt, completion = counter.messages(body["messages"]), counter.count(text)
        usage = Usage(prompt, completion, prompt + completion, estimated=True)
    return Result(text, turn.model, usage, outcomes, time.perf_counter() - started)


async def handle(engine: Engine, data: dict[str, Any]) -> dict[str, Any]:
    """A worker's run of an agent's step sent as a task."""
    agent, messages = from_payload(data)
    return reply(await run_here(engine, agent, messages))
