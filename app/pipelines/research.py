"""The `research` pipeline: search the web for the question, read the top pages at once, and
answer from them, citing each page as [n]; the pages go to the client as the answer's sources.
Listed when the web_search and fetch_url tools are enabled."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from app.chat.events import AgentStep, Event, Sources, ToolFinished, ToolStarted
from app.ids import new_id
from app.pipelines.agent import Agent, Emit
from app.pipelines.run import OneAnswerer, Run, at_once
from app.tools.registry import ToolOutcome, ToolRegistry

NEEDS = ("web_search", "fetch_url")
_Job = Callable[[Emit], Awaitable[ToolOutcome]]
PAGES = 3
PAGE_CHARS = 3000
ANSWER_PROMPT = """Answer the user's question from the web pages below, and cite each page you
use as [n], its number. If the pages do not answer it, say so.

Pages:
"""


class ResearchPipeline(OneAnswerer):
    id = "research"
    description = "Searches the web, reads the top pages at once, and answers citing them."

    def __init__(self, registry: ToolRegistry, model: str) -> None:
        self._registry = registry
        self._answer = Agent("answer", ANSWER_PROMPT, model, max_tokens=1024)

    def steps(self) -> list[dict[str, Any]]:
        return [
            {"name": "search", "kind": "tool", "tool": "web_search"},
            {"name": "read", "kind": "tool", "tool": "fetch_url", "pages": PAGES},
            {"name": "answer", "kind": "agent", "model": self._answer.model},
        ]

    async def run(self, run: Run) -> AsyncIterator[Event]:
        started = time.perf_counter()
        yield AgentStep("search", "start")
        found: list[ToolOutcome | None] = [None]
        search = {"query": run.question, "max_results": 5}
        async for event in at_once([self._call("web_search", search)], found):
            yield event
        hits = _results(found[0])[:PAGES]
        seconds = time.perf_counter() - started
        yield AgentStep("search", "end", seconds, detail=f"{len(hits)} results")
        started = time.perf_counter()
        yield AgentStep("read", "start")
        pages: list[ToolOutcome | None] = [None] * len(hits)
        async for event in at_once(
            [self._call("fetch_url", {"url": h["url"]}) for h in hits], pages
        ):
            yield event
        read = [
            (hit, _text(page))
            for hit, page in zip(hits, pages, strict=True)
            if page is not None and page.ok
        ]
        seconds = time.perf_counter() - started
        yield AgentStep("read", "end", seconds, detail=f"{len(read)} pages")
        items = tuple(
            {"url": hit["url"], "title": hit.get("title") or hit["url"], "text": text[:500]}
            for hit, text in read
        )
        if items:
            yield Sources(items)
        numbered = "\n\n".join(
            f"[{n}] {hit.get('title', '')} ({hit['url']})\n{text[:PAGE_CHARS]}"
            for n, (hit, text) in enumerate(read, start=1)
        )
        agent = replace(self._answer, prompt=ANSWER_PROMPT + (numbered or "(none could be read)"))
        async for event in run.answer(agent, run.messages):
            yield event
        async for event in run.follow_ups():
            yield event

    def _call(
        self, name: str, arguments: dict[str, Any]
    ) -> Callable[[Emit], Awaitable[ToolOutcome]]:
        """A job that runs the tool, its start and end told as they happen."""

        async def job(emit: Emit) -> ToolOutcome:
            call_id = new_id("call_")
            emit(ToolStarted(call_id, name, ToolOutcome.shown(arguments)))
            outcome = await self._registry.call(name, arguments)
            emit(ToolFinished(call_id, outcome))
            return outcome

        return job


def _results(outcome: ToolOutcome | None) -> list[dict[str, Any]]:
    if outcome is None or not outcome.ok:
        return []
    try:
        found = orjson.loads(outcome.content)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(found, list):
        return []
    return [hit for hit in found if isinstance(hit, dict) and isinstance(hit.get("url"), str)]


def _text(outcome: ToolOutcome) -> str:
    try:
        page = orjson.loads(outcome.content)
    except orjson.JSONDecodeError:
        return outcome.content
    if isinstance(page, dict):
        return str(page.get("text") or page.get("content") or "")
    return outcome.content
