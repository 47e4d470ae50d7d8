"""The `router` pipeline: each message is classified into an intent (patterns, nearest examples,
the model, the fallback: `classifier.py`) and sent to the intent's target: another pipeline, a
specialist agent's prompt, a model, or an escalation.

The conversation keeps its current intent: the intent of the user's earlier messages, each
classified in turn (their verdicts come from the intent cache), is the current one a vague new
message stays with. An urgent intent is escalated: answered with its configured message at once,
and sent to ALERT_WEBHOOK_URL when it is set."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from app.chat.context import text_of
from app.chat.events import AgentStep, Event, Finish, Text
from app.pipelines.agent import Agent
from app.pipelines.classifier import Classification, Classifier
from app.pipelines.intents import Intent
from app.pipelines.run import Pipeline, Run

log = logging.getLogger(__name__)

EARLIER = 5
"""The user's earlier messages whose intents make the conversation's current one."""
_ALERT_TIMEOUT = 5.0


class RouterPipeline:
    id = "router"
    description = (
        "Classifies each message into an intent and sends it to that intent's specialist, "
        "pipeline or model; urgent intents are escalated."
    )

    def __init__(
        self,
        classifier: Classifier,
        pipeline: Callable[[str], Pipeline | None],
        model: str,
        alert_url: str = "",
    ) -> None:
        """`pipeline` finds a target pipeline by its id (None: not here); `model` answers the
        intents whose target is a prompt, or a pipeline that is not here."""
        self._classifier = classifier
        self._pipeline = pipeline
        self._model = model
        self._alert_url = alert_url
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def answering_model(self) -> str:
        return self._model

    def models(self) -> list[str]:
        intents = self._classifier.intents
        return [self._model, *(i.target.value for i in intents if i.target.kind == "model")]

    def steps(self) -> list[dict[str, Any]]:
        intents = self._classifier.intents
        return [
            {"name": "classify", "kind": "intents", "intents": intents.names},
            {
                "name": "route",
                "kind": "targets",
                "targets": {i.name: f"{i.target.kind}: {_short(i.target.value)}" for i in intents},
            },
        ]

    async def run(self, run: Run) -> AsyncIterator[Event]:
        started = time.perf_counter()
        yield AgentStep("classify", "start")
        found = await self._classify(run)
        intent = self._classifier.intents[found.intent]
        detail = f"{found.intent} (by {found.stage})"
        yield AgentStep("classify", "end", time.perf_counter() - started, detail=detail)
        target = intent.target
        if intent.urgent or target.kind == "escalate":
            async for event in self._escalate(run, intent):
                yield event
            return
        pipeline = self._pipeline(target.value) if target.kind == "pipeline" else None
        if pipeline is not None and pipeline is not self:
            async for event in pipeline.run(run):
                yield event
            return
        if target.kind == "prompt":
            agent = Agent(intent.name, target.value, self._model)
        elif target.kind == "model":
            agent = Agent(intent.name, "", target.value)
        else:  # a pipeline that is not here
            agent = Agent(intent.name, "", self._model)
        async for event in run.answer(agent, run.messages):
            yield event
        async for event in run.follow_ups():
            yield event

    async def _classify(self, run: Run) -> Classification:
        said = [text_of(m) for m in run.messages if m.get("role") == "user"]
        current: str | None = None
        for text in said[-EARLIER - 1 : -1]:
            if text.strip():
                current = (await self._classifier.classify(text, current)).intent
        return await self._classifier.classify(run.question, current)

    async def _escalate(self, run: Run, intent: Intent) -> AsyncIterator[Event]:
        yield AgentStep("escalate", "start")
        sent = "alert sent" if self._alert_url else "no ALERT_WEBHOOK_URL: logged"
        log.warning("urgent intent %s: escalated (%s)", intent.name, sent)
        if self._alert_url:
            task = asyncio.create_task(self._alert(intent, run.question))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        run.answered = intent.target.value
        yield Text(intent.target.value)
        yield AgentStep("escalate", "end", detail=sent)
        yield Finish("stop")

    async def _alert(self, intent: Intent, message: str) -> None:
        body = {
            "text": f"🚨 Urgent intent '{intent.name}' escalated: {message[:500]}",
            "alert": "urgent_intent",
            "intent": intent.name,
            "message": message[:2000],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            async with httpx.AsyncClient(timeout=_ALERT_TIMEOUT, trust_env=False) as client:
                response = await client.post(self._alert_url, json=body)
            if response.status_code >= 400:
                log.error("the escalation webhook answered %s", response.status_code)
        except httpx.HTTPError as exc:
            log.error("the escalation webhook could not be reached: %s", type(exc).__name__)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "…"
