"""A turn of a stored conversation: the gateway keeps the history. The session is loaded (or
created), the context packed under TOKEN_BUDGET, the engine answers, and the turn is kept: both
messages and the turn's metrics in one atomic write, then older turns folded into the summary in
the background.

A session that cannot be loaded or saved fails the turn with a 503 (`StateUnavailable`) rather
than answering and forgetting: loading comes before the model is asked, saving before the turn
ends.

The turn's events are the engine's (text, the gateway's tools), framed by an `AgentStep` at the
start and, once the turn is kept, its `Usage` (counted when the upstream reported none),
`Timings`, `Sources` and, when streamed, `FollowUps`: three questions from a short side question
to the model that answered (80 tokens, REQUEST_TIMEOUT), topped up with generic ones.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson

from app.chat.context import Packed, TokenCounter, counter_for, fold_count, pack
from app.chat.engine import Engine
from app.chat.events import (
    AgentStep,
    Event,
    Finish,
    FollowUps,
    Sources,
    Text,
    Timings,
    ToolFinished,
    Usage,
)
from app.chat.grounding import Asker, placed_messages, render
from app.chat.summary import Folder
from app.chat.turn import Turn
from app.config import StateSettings
from app.errors import GatewayError, NotFound
from app.providers.router import Needs, Route
from app.state.sessions import Message, Session, SessionStore, TurnRecord
from app.tools.registry import ToolOutcome

log = logging.getLogger(__name__)

FOLLOW_UP_MAX_TOKENS = 80
FOLLOW_UP_PROMPT = (
    "Suggest three short follow-up questions the user might ask next, in the user's language. "
    "Write one question per line, each ending with a question mark, and nothing else."
)
GENERIC_FOLLOW_UPS = (
    "Can you explain that in more detail?",
    "Can you give me an example?",
    "What should I keep in mind about this?",
)
_QUESTION = re.compile(r"[^?\n]*\?")
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)]|Q\d*[:.])\s*")
_URL = re.compile(r"https?://[^\s\"'<>)\]]+")


@dataclass(frozen=True, slots=True)
class Ask:
    user_id: str
    session_id: str | None
    text: str
    model: str | None = None
    streamed: bool = False
    """The answer is sent as it comes, and ends with follow-up questions."""
    rag: bool = True
    memory: bool = True


@dataclass(frozen=True, slots=True)
class _Context:
    """What the turn was given: the session as loaded, and the context packed from it."""

    ask: Ask
    session_id: str
    route: Route
    session: Session | None
    unfolded: list[Message]
    packed: Packed
    counter: TokenCounter
    started: float


class Conversations:
    def __init__(
        self,
        *,
        engine: Engine,
        store: SessionStore,
        folder: Folder,
        settings: StateSettings,
        side_timeout: float,
    ) -> None:
        self._engine = engine
        self._store = store
        self._folder = folder
        self._settings = settings
        self._side_timeout = side_timeout

    async def open(self, ask: Ask) -> Turn:
        """Load the session, pack the context and wait for the answer's first chunk; observed
        as one turn from here (its retrieval, the answer, the follow-ups)."""
        return await self._engine.observed("chat", ask.model, self._open(ask))

    async def _open(self, ask: Ask) -> Turn:
        started = time.perf_counter()
        session_id = ask.session_id or str(uuid.uuid4())
        session, unfolded = await self._store.load(session_id)
        if session is not None and session.user_id != ask.user_id:
            raise NotFound(f"no session '{session_id}'", param="session_id")
        route = await self._engine.resolve(ask.model)
        counter = counter_for(route.id)
        asker = Asker(ask.user_id, session_id, rag=ask.rag, memory=ask.memory)
        budget = self._settings.token_budget
        grounder = self._engine.grounder
        placed = render(await grounder.recall(asker, ask.text), counter, budget // 3)
        grounding_cost = counter.messages([{"role": "system", "content": placed.text}])
        extra = grounding_cost if placed.text else 0
        packed = pack(
            persona=self._engine.persona.instructions(),
            summary=session.summary if session else "",
            history=unfolded,
            new=ask.text,
            k=self._settings.short_term_k,
            budget=budget - extra,
            counter=counter,
        )
        packed = replace(packed, tokens=packed.tokens + extra)
        model = ask.model if self._engine.is_pipeline(ask.model) else route.id
        answer = await self._engine.open_chat(
            {"model": model, "messages": placed_messages(packed.messages, placed)},
            Needs(whole=not ask.streamed, follow_ups=ask.streamed),
            route,
            asker=asker,
            placed=placed,
        )
        context = _Context(ask, session_id, route, session, unfolded, packed, counter, started)
        return Turn(
            answer.model,
            self._events(answer, context),
            id=answer.id,
            created=answer.created,
            lists_tools=True,
            session_id=session_id,
            user_id=ask.user_id,
        )

    async def _events(self, answer: Turn, context: _Context) -> AsyncIterator[Event]:
        yield AgentStep(self._engine.persona.name, "start")
        parts: list[str] = []
        outcomes: list[ToolOutcome] = []
        agents: list[AgentStep] = []
        followed = False
        ttft: float | None = None
        async for event in answer.events():
            match event:
                case Text(text=text):
                    ttft = ttft or time.perf_counter() - context.started
                    parts.append(text)
                    yield event
                case ToolFinished(outcome=outcome):
                    outcomes.append(outcome)
                    yield event
                case AgentStep(phase="end"):
                    agents.append(event)
                    yield event
                case FollowUps():
                    followed = True
                    yield event
                case Usage() | Finish():
                    pass
                case _:
                    yield event
        total = time.perf_counter() - context.started
        text = "".join(parts)
        timings = Timings(
            round((total if ttft is None else ttft) * 1000, 1), round(total * 1000, 1)
        )
        usage = _usage(answer.usage, context, text)
        await self._save(context, answer.model, text, outcomes, usage, timings, agents)
        yield usage
        yield timings
        yield Sources(tuple(sources(outcomes)))
        if context.ask.streamed and not followed:
            yield FollowUps(tuple(await self._follow_ups(answer.model, context, text)))

    async def _save(
        self,
        context: _Context,
        model: str,
        text: str,
        tools: list[ToolOutcome],
        usage: Usage,
        timings: Timings,
        agents: list[AgentStep],
    ) -> None:
        now = int(time.time())
        user: Message = {"role": "user", "content": context.ask.text, "created_at": now}
        assistant: Message = {
            "role": "assistant",
            "content": text,
            "created_at": now,
            "model": model,
        }
        if tools:
            assistant["tools_used"] = [outcome.name for outcome in tools]
        counts = usage.public()
        metric = {
            "at": time.time(),
            "model": model,
            "ttft_ms": timings.ttft_ms,
            "total_ms": timings.total_ms,
            "tool_calls": [
                {"name": o.name, "ok": o.ok, "duration_ms": round(o.seconds * 1000, 1)}
                for o in tools
            ],
            **counts,
            "tokens_estimated": usage.estimated,
            "context_tokens": context.packed.tokens,
            "history_turns": context.packed.turns,
        }
        if agents:
            metric["agents"] = [
                {"name": a.name, "duration_ms": round(a.seconds * 1000, 1), "tokens": a.tokens}
                for a in agents
            ]
        totals = {
            "turns": 1,
            "messages": 2,
            "tool_calls": len(tools),
            "tool_errors": sum(1 for o in tools if not o.ok),
            **counts,
            "ttft_ms": round(timings.ttft_ms),
            "total_ms": round(timings.total_ms),
        }
        record = TurnRecord([user, assistant], metric, totals)
        session_id, user_id = context.session_id, context.ask.user_id
        if await self._store.append_turn(session_id, user_id, record) is None:
            raise NotFound(f"no session '{session_id}'", param="session_id")
        settings = self._settings
        to_fold = fold_count(
            [*context.unfolded, user, assistant],
            persona=self._engine.persona.instructions(),
            k=settings.short_term_k,
            budget=settings.token_budget,
            max_messages=settings.max_session_messages,
            counter=context.counter,
        )
        if to_fold:
            folded = context.session.folded if context.session else 0
            self._folder.schedule(session_id, model, folded + to_fold)

    async def _follow_ups(self, model: str, context: _Context, answered: str) -> list[str]:
        """Three follow-up questions from `model` (which answered): its own, topped up with
        generic ones."""
        messages = [
            {"role": "system", "content": FOLLOW_UP_PROMPT},
            {"role": "user", "content": f"User: {context.ask.text}\nAssistant: {answered}"},
        ]
        reply = ""
        try:
            route = context.route
            if route.id != model and not self._engine.is_pipeline(model):  # a fallback answered
                route = await self._engine.router.resolve(model)
            reply = await self._engine.router.ask(
                route,
                messages,
                max_tokens=FOLLOW_UP_MAX_TOKENS,
                temperature=0.7,
                within=self._side_timeout,
            )
        except GatewayError as exc:
            log.info("no follow-up questions from %s: %s", model, exc.message)
        return parse_follow_ups(reply)


def _usage(reported: Usage | None, context: _Context, text: str) -> Usage:
    """The usage the upstream reported, else counted."""
    if reported is not None and reported.total_tokens:
        return reported
    prompt, completion = context.packed.tokens, context.counter.count(text)
    return Usage(prompt, completion, prompt + completion, estimated=True)


def parse_follow_ups(reply: str, wanted: int = 3) -> list[str]:
    """Up to `wanted` questions found in `reply`, then generic ones up to `wanted`."""
    found: list[str] = []
    for line in reply.splitlines():
        for match in _QUESTION.findall(_LIST_MARK.sub("", line)):
            question = _LIST_MARK.sub("", match).strip().strip("\"'")
            if len(question) > 3 and question not in found:
                found.append(question)
    for generic in GENERIC_FOLLOW_UPS:
        if generic not in found:
            found.append(generic)
    return found[:wanted]


def sources(outcomes: list[ToolOutcome]) -> list[dict[str, str]]:
    """The URLs and named sources in the results of the tools that succeeded, each once."""
    found: list[dict[str, str]] = []
    seen: set[str] = set()
    for outcome in outcomes:
        if not outcome.ok:
            continue
        try:
            items = list(_cited(orjson.loads(outcome.content)))
        except orjson.JSONDecodeError:
            items = [{"url": url} for url in _URL.findall(outcome.content)]
        for item in items:
            key = item.get("url") or item["source"]
            if key not in seen:
                seen.add(key)
                found.append({"tool": outcome.name, **item})
    return found


def _cited(data: Any) -> Iterator[dict[str, str]]:
    if isinstance(data, list):
        for value in data:
            yield from _cited(value)
    elif isinstance(data, dict):
        url, source, title = data.get("url"), data.get("source"), data.get("title")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            yield {"url": url, **({"title": title} if isinstance(title, str) else {})}
        elif isinstance(source, str) and source:
            yield {"source": source}
        for value in data.values():
            if isinstance(value, dict | list):
                yield from _cited(value)
