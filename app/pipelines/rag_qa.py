"""The `rag-qa` pipeline: an answer from the user's documents alone. The turn's hybrid retrieval
(the grounding every turn gets) finds the passages; with none relevant the answer says so at once,
without asking a model; else the model answers only from them, citing each as [n]. Listed when
document retrieval is on (RAG_ENABLED)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from app.chat.events import AgentStep, Event, Finish, Text
from app.pipelines.agent import Agent
from app.pipelines.run import OneAnswerer, Run

NOTHING_FOUND = "I found nothing in your documents that answers this."
PROMPT = """Answer the user's question only from the passages of their documents given in this
conversation, citing each passage you use by its number in brackets, like [1]. If the passages
do not answer the question, say that the documents do not answer it; never answer from general
knowledge."""


class RagQaPipeline(OneAnswerer):
    id = "rag-qa"
    description = "Answers only from your documents, citing the passages; says so when none does."

    def __init__(self, model: str) -> None:
        self._answer = Agent("answer", PROMPT, model, max_tokens=1024)

    def steps(self) -> list[dict[str, Any]]:
        return [
            {"name": "retrieve", "kind": "retrieval", "search": "the turn's hybrid retrieval"},
            {"name": "answer", "kind": "agent", "model": self._answer.model},
        ]

    async def run(self, run: Run) -> AsyncIterator[Event]:
        passages = [] if run.placed is None else run.placed.grounding.passages
        if not passages:
            yield AgentStep("answer", "start")
            run.answered = NOTHING_FOUND
            yield Text(NOTHING_FOUND)
            yield AgentStep("answer", "end", detail="no relevant passage")
            yield Finish("stop")
            return
        count = len(passages)
        found = f"from {count} passage{'' if count == 1 else 's'}"
        async for event in run.answer(self._answer, run.messages, detail=found):
            yield event
        async for event in run.follow_ups():
            yield event
