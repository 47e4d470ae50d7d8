"""The `agents` pipeline: a planner splits the question into one to three subtasks, workers do
them at once with the tools each needs, a critic checks the work (and may send it back once),
and a synthesizer streams the answer, then suggests follow-up questions.

A plan that is not valid JSON of the plan's schema is asked for once more, with the reason;
after that the turn is answered directly and its events say so (the planner's end)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, ValidationError

from app.chat.events import AgentStep, Event
from app.config import PipelineSettings
from app.pipelines.agent import Agent, Emit, Result
from app.pipelines.run import Run, at_once

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subtasks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "task": {"type": "string"},
                    "tools": {"type": "array", "items": {"type": "string"}},
                    "needs": {"type": "string"},
                },
                "required": ["task"],
            },
        }
    },
    "required": ["subtasks"],
}
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "revise"]},
        "feedback": {"type": "string"},
        "revise": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["verdict"],
}
PLANNER_PROMPT = """You are the planner of a team that answers the user's question.
Split the work into 1 to 3 independent subtasks. For each, say what to do, which tools it needs
(only from this list: {tools}) and what data it needs.
Reply with JSON only, in this form:
{{"subtasks": [{{"task": "...", "tools": ["..."], "needs": "..."}}]}}"""
WORKER_PROMPT = """You are a worker of a team that answers the user's question. Do only your
subtask, using your tools when they help, and report what you found, briefly and precisely."""
CRITIC_PROMPT = """You are the critic of a team that answers the user's question. Check the
workers' results against the question: are they correct, complete and on topic?
Reply with JSON only: {"verdict": "accept"} when they are good enough, else
{"verdict": "revise", "feedback": "what is wrong or missing", "revise": [numbers of the results
to redo]}."""
SYNTHESIZER_PROMPT = """You write the team's final answer to the user, from the conversation and
the workers' findings below. Answer the question directly and clearly; do not mention the team,
the subtasks or the findings as such."""
NO_PLAN = "no valid plan after 2 tries: answering directly"


class Subtask(BaseModel):
    task: str = Field(min_length=1)
    tools: list[str] = []
    needs: str = ""


class Plan(BaseModel):
    subtasks: list[Subtask] = Field(min_length=1, max_length=3)


class Verdict(BaseModel):
    verdict: Literal["accept", "revise"]
    feedback: str = ""
    revise: list[int] = []


def json_reply(text: str) -> Any:
    """The JSON object in a model's reply, also when fenced or wrapped in words."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the reply holds no JSON object")
    return orjson.loads(text[start : end + 1])


def parse_plan(text: str, tools: dict[str, str]) -> Plan:
    """The plan in `text`; a `ValueError` saying what is wrong with it."""
    try:
        plan = Plan.model_validate(json_reply(text))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    for subtask in plan.subtasks:
        unknown = [name for name in subtask.tools if name not in tools]
        if unknown:
            raise ValueError(f"unknown tools {unknown}; the tools are {list(tools) or 'none'}")
    return plan


class AgentsPipeline:
    id = "agents"
    description = (
        "A planner splits the question into subtasks, workers do them at once with tools, a "
        "critic checks the work, and a synthesizer writes the answer."
    )

    def __init__(self, settings: PipelineSettings, tools: dict[str, str]) -> None:
        """`tools`: the gateway's enabled tools, by name, with their descriptions."""
        self._tools = tools
        listed = ", ".join(tools) or "none: leave tools empty"
        self.planner = Agent(
            "planner",
            PLANNER_PROMPT.format(tools=listed),
            settings.planner_model,
            max_tokens=400,
            schema=PLAN_SCHEMA,
        )
        self.worker = Agent("worker", WORKER_PROMPT, settings.worker_model, max_tokens=600)
        self.critic = Agent(
            "critic", CRITIC_PROMPT, settings.critic_model, max_tokens=300, schema=VERDICT_SCHEMA
        )
        self.synthesizer = Agent(
            "synthesizer", SYNTHESIZER_PROMPT, settings.synthesizer_model, max_tokens=1024
        )

    @property
    def answering_model(self) -> str:
        return self.synthesizer.model

    def models(self) -> list[str]:
        return [a.model for a in (self.planner, self.worker, self.critic, self.synthesizer)]

    def steps(self) -> list[dict[str, Any]]:
        return [
            {"name": "planner", "kind": "agent", "model": self.planner.model},
            {"name": "worker", "kind": "agent", "model": self.worker.model, "tools": "per plan"},
            {"name": "critic", "kind": "agent", "model": self.critic.model},
            {"name": "synthesizer", "kind": "agent", "model": self.synthesizer.model},
        ]

    async def run(self, run: Run) -> AsyncIterator[Event]:
        plans: list[Plan | None] = [None]
        async for event in at_once([lambda emit: self._plan(run, emit)], plans):
            yield event
        findings: list[str] = []
        plan = plans[0]
        if plan is not None:
            results: list[Result | None] = [None] * len(plan.subtasks)
            async for event in self._work(run, plan, list(range(len(plan.subtasks))), results):
                yield event
            verdicts: list[Verdict | None] = [None]
            async for event in at_once([lambda emit: self._check(run, results, emit)], verdicts):
                yield event
            verdict = verdicts[0]
            if verdict is not None and verdict.verdict == "revise":
                again = [n - 1 for n in verdict.revise if 1 <= n <= len(results)]
                redo = again or list(range(len(results)))
                async for event in self._work(run, plan, redo, results, verdict.feedback):
                    yield event
            findings = [
                f"{n}. {subtask.task}\n{result.text if result else '(no result)'}"
                for n, (subtask, result) in enumerate(
                    zip(plan.subtasks, results, strict=True), start=1
                )
            ]
        async for event in self._synthesize(run, findings):
            yield event

    async def _plan(self, run: Run, emit: Emit) -> Plan | None:
        started = time.perf_counter()
        emit(AgentStep("planner", "start"))
        messages = list(run.messages)
        tokens = 0
        for attempt in (1, 2):
            result = await run.agents.run(self.planner, messages, run.deadline, emit)
            run.usage = run.usage + result.usage
            tokens += result.usage.total_tokens
            try:
                plan = parse_plan(result.text, self._tools)
            except ValueError as exc:
                if attempt == 2:
                    break
                messages = [
                    *messages,
                    {"role": "assistant", "content": result.text},
                    {"role": "user", "content": f"That plan is not valid: {exc}. Reply again."},
                ]
                continue
            count = len(plan.subtasks)
            detail = f"{count} subtask{'s' if count > 1 else ''}"
            emit(AgentStep("planner", "end", time.perf_counter() - started, tokens, detail))
            return plan
        emit(AgentStep("planner", "end", time.perf_counter() - started, tokens, NO_PLAN))
        return None

    async def _work(
        self,
        run: Run,
        plan: Plan,
        which: list[int],
        results: list[Result | None],
        feedback: str = "",
    ) -> AsyncIterator[Event]:
        grounding = [m for m in run.messages if m.get("role") == "system"]

        def job(index: int) -> Callable[[Emit], Awaitable[Result]]:
            subtask = plan.subtasks[index]
            worker = replace(self.worker, tools=tuple(subtask.tools))
            ask = f"The user's question: {run.question}\n\nYour subtask: {subtask.task}"
            if subtask.needs:
                ask += f"\nWhat it needs: {subtask.needs}"
            if feedback:
                ask += f"\n\nA first attempt was sent back by the critic: {feedback}"
            messages = [*grounding, {"role": "user", "content": ask}]
            return lambda emit: run.step(worker, messages, emit, subtask.task[:120])

        done: list[Result | None] = [None] * len(which)
        async for event in at_once([job(index) for index in which], done):
            yield event
        for index, result in zip(which, done, strict=True):
            results[index] = result

    async def _check(self, run: Run, results: list[Result | None], emit: Emit) -> Verdict | None:
        started = time.perf_counter()
        emit(AgentStep("critic", "start"))
        work = "\n\n".join(
            f"Result {n}:\n{r.text if r else '(none)'}" for n, r in enumerate(results, start=1)
        )
        messages = [{"role": "user", "content": f"Question: {run.question}\n\n{work}"}]
        result = await run.agents.run(self.critic, messages, run.deadline, emit)
        run.usage = run.usage + result.usage
        try:
            verdict: Verdict | None = Verdict.model_validate(json_reply(result.text))
        except (ValueError, ValidationError):
            verdict = None
        detail: str = "unreadable verdict: accepted" if verdict is None else verdict.verdict
        if verdict is not None and verdict.verdict == "revise":
            detail = f"sent back: {verdict.feedback}"[:200]
        seconds = time.perf_counter() - started
        emit(AgentStep("critic", "end", seconds, result.usage.total_tokens, detail))
        return verdict

    async def _synthesize(self, run: Run, findings: list[str]) -> AsyncIterator[Event]:
        agent = self.synthesizer
        if findings:
            agent = replace(agent, prompt=agent.prompt + "\n\nFindings:\n" + "\n\n".join(findings))
        async for event in run.answer(agent, run.messages):
            yield event
        async for event in run.follow_ups():
            yield event
