"""What a pipeline is, and what one run of it is given: the conversation, its answering model,
the agents, the deadline; and the steps of a run, alone or at once, as events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from app.chat.events import (
    NO_USAGE,
    AgentStep,
    Event,
    Finish,
    FollowUps,
    Text,
    ToolCallDelta,
    Usage,
)
from app.chat.grounding import Placed
from app.chat.stateful import FOLLOW_UP_MAX_TOKENS, FOLLOW_UP_PROMPT, parse_follow_ups
from app.errors import GatewayError
from app.pipelines.agent import Agent, Agents, Emit, Result
from app.providers.router import Needs, Route

_T = TypeVar("_T")


@dataclass(slots=True)
class Run:
    """One run of a pipeline."""

    pipeline: str
    messages: list[dict[str, Any]]
    """The conversation, grounded (memories and passages placed), without any persona."""
    question: str
    """The text of the user's last message."""
    route: Route
    """The pipeline's answering model."""
    needs: Needs
    agents: Agents
    deadline: float
    """Unix time by which every step must be done (TOTAL_TIMEOUT from the start)."""
    side_timeout: float
    placed: Placed | None = None
    """The memories and passages placed in `messages` for the user who asks; None when the turn
    is grounded for no one."""
    usage: Usage = field(default_factory=lambda: NO_USAGE)
    """The tokens of every step so far."""
    answered: str = ""
    """The answer's text, once it is streamed."""

    async def step(
        self, agent: Agent, messages: list[dict[str, Any]], emit: Emit, detail: str = ""
    ) -> Result:
        """`agent`'s answer about `messages`, framed by its `AgentStep`s, its tokens counted."""
        started = time.perf_counter()
        emit(AgentStep(agent.name, "start"))
        result = await self.agents.run(agent, messages, self.deadline, emit)
        self.usage = self.usage + result.usage
        tokens = result.usage.total_tokens
        seconds = time.perf_counter() - started  # a broker's hops included
        emit(AgentStep(agent.name, "end", seconds, tokens, detail))
        return result

    async def answer(
        self, agent: Agent, messages: list[dict[str, Any]], detail: str = ""
    ) -> AsyncIterator[Event]:
        """`agent`'s answer about `messages`, streamed here (never a broker's: the client is
        here), framed by its `AgentStep`s; its finish comes after its end."""
        started = time.perf_counter()
        yield AgentStep(agent.name, "start")
        engine = self.agents.engine.limited(agent.tools)
        route = self.route if agent.model == self.route.id else None
        route = route or await engine.resolve(agent.model or None)
        body = agent.body(messages, route.id)
        turn = await engine.open_chat(body, Needs(whole=self.needs.whole), route)
        parts: list[str] = []
        finishes: list[Finish] = []
        used = 0
        async for event in turn.source:
            match event:
                case Text(text=text, choice=0):
                    parts.append(text)
                    yield event
                case Usage():
                    self.usage = self.usage + event
                    used = event.total_tokens
                case Finish():
                    finishes.append(event)
                case Text() | ToolCallDelta():
                    pass  # other choices; the client's tools (it sent none)
                case _:
                    yield event
        self.answered = "".join(parts)
        yield AgentStep(agent.name, "end", time.perf_counter() - started, used, detail)
        for finish in finishes:
            yield finish

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.time())

    async def follow_ups(self) -> AsyncIterator[Event]:
        """Three follow-up questions about the answer from the answering model, when the caller
        shows them."""
        if not self.needs.follow_ups:
            return
        messages = [
            {"role": "system", "content": FOLLOW_UP_PROMPT},
            {"role": "user", "content": f"User: {self.question}\nAssistant: {self.answered}"},
        ]
        reply = ""
        with contextlib.suppress(GatewayError):  # generic questions instead
            reply = await self.agents.engine.router.ask(
                self.route,
                messages,
                max_tokens=FOLLOW_UP_MAX_TOKENS,
                temperature=0.7,
                within=min(self.side_timeout, self.remaining()),
            )
        yield FollowUps(tuple(parse_follow_ups(reply)))


class Pipeline(Protocol):
    """A named graph of steps, as the catalogue lists it and runs it."""

    @property
    def id(self) -> str: ...

    @property
    def description(self) -> str: ...

    def steps(self) -> list[dict[str, Any]]:
        """Each step: its `name` and `kind` (agent or function), and what it uses."""
        ...

    def models(self) -> list[str]:
        """The models its steps ask (empty: DEFAULT_MODEL)."""
        ...

    @property
    def answering_model(self) -> str:
        """The model whose words the answer is ("": DEFAULT_MODEL)."""
        ...

    def run(self, run: Run) -> AsyncIterator[Event]:
        """The run's events: its steps' and the answer's (text, finish); the usage is the
        catalogue's to report."""
        ...


class OneAnswerer:
    """The part of a pipeline whose one agent (`_answer`) writes the answer: its model is the
    pipeline's answering model and the only one it asks."""

    _answer: Agent

    @property
    def answering_model(self) -> str:
        return self._answer.model

    def models(self) -> list[str]:
        return [self._answer.model]


async def at_once(
    jobs: Sequence[Callable[[Emit], Awaitable[_T]]], results: list[_T]
) -> AsyncIterator[Event]:
    """The events of `jobs` run at once, as they come; each job's result goes in `results` at
    its index. A job that fails fails the rest: they are cancelled and the error raised."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def one(index: int, job: Callable[[Emit], Awaitable[_T]]) -> None:
        try:
            results[index] = await job(queue.put_nowait)
        finally:
            queue.put_nowait(None)

    tasks = [asyncio.create_task(one(i, job)) for i, job in enumerate(jobs)]
    try:
        running = len(tasks)
        while running:
            event = await queue.get()
            if event is None:
                running -= 1
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            else:
                yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
