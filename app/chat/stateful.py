"""A stateful turn: the gateway keeps the conversation. The session is loaded (or created), the
context packed under TOKEN_BUDGET, the chat service answers, and the turn is kept: both messages
and the turn's metrics in one atomic write, then older turns folded into the summary in the
background.

A session that cannot be loaded or saved fails the turn with a 503 (`StateUnavailable`) rather
than answering and forgetting: loading comes before the model is asked, saving before the answer
counts as done.

The chat service is asked for a plain (not streamed) answer, so that the tool loop puts no status
lines in the text; its chunks are still read as they come. Tool events follow the tool loop:
`tool_call_started` when it announces the calls it runs (its `running <names>` comment),
`tool_call_completed` as their outcomes appear in `tools_used`.

Follow-up suggestions come from a short extra call to the model that answered (80 tokens,
REQUEST_TIMEOUT); when its reply does not hold three questions, generic ones make up the rest.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from app.chat.context import Packed, TokenCounter, counter_for, fold_count, pack
from app.chat.persona import Persona
from app.chat.service import ChatService
from app.chat.summary import Folder
from app.chat.tool_loop import RUNNING, ToolTurn
from app.chat.turn import Answer, Turn
from app.config import Settings
from app.errors import GatewayError, NotFound
from app.memory.sessions import Message, Session, SessionStore, TurnRecord
from app.providers.router import Needs, Router
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


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a streamed stateful turn: `agent`, `tool_call_started`,
    `tool_call_completed`, `token`, `done` or `error`."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Context:
    """What the turn was given: the session as loaded, and the context packed from it."""

    session_id: str
    session: Session | None
    unfolded: list[Message]
    packed: Packed
    counter: TokenCounter


class Recall(Protocol):
    """Long-term memories and knowledge passages relevant to a message, best first. This is the
    seam for the knowledge store; until one is given, turns recall nothing."""

    async def __call__(self, user_id: str, session_id: str, text: str) -> list[str]: ...


class StatefulChat:
    def __init__(
        self,
        *,
        chat: ChatService,
        router: Router,
        store: SessionStore,
        folder: Folder,
        persona: Persona,
        settings: Settings,
        recall: Recall | None = None,
    ) -> None:
        self.chat = chat
        self.router = router
        self.store = store
        self.folder = folder
        self.persona = persona
        self.settings = settings
        self._recall = recall

    async def open(self, ask: Ask) -> StatefulTurn:
        """Load the session, pack the context and wait for the answer's first chunk."""
        started = time.perf_counter()
        session_id = ask.session_id or str(uuid.uuid4())
        session, unfolded = await self.store.load(session_id)
        if session is not None and session.user_id != ask.user_id:
            raise NotFound(f"no session '{session_id}'", param="session_id")
        route = await self.router.resolve(ask.model)
        counter = counter_for(route.id)
        recalled = await self._recall(ask.user_id, session_id, ask.text) if self._recall else []
        packed = pack(
            persona=self.persona.instructions(),
            summary=session.summary if session else "",
            recalled=recalled,
            history=unfolded,
            new=ask.text,
            k=self.settings.short_term_k,
            budget=self.settings.token_budget,
            counter=counter,
        )
        answer = await self.chat.start(
            {"model": route.id, "messages": packed.messages},
            stream=False,
            include_usage=True,
            needs=Needs(),
        )
        context = _Context(session_id, session, unfolded, packed, counter)
        return StatefulTurn(self, ask, context, answer, started)


class StatefulTurn:
    def __init__(
        self, owner: StatefulChat, ask: Ask, context: _Context, answer: Answer, started: float
    ) -> None:
        self.session_id = context.session_id
        self.text = ""
        self._owner = owner
        self._ask = ask
        self._context = context
        self._answer = answer
        self._started = started
        self._ttft: float | None = None
        self._total = 0.0

    @property
    def model(self) -> str:
        return self._answer.model

    @property
    def tools_used(self) -> list[ToolOutcome]:
        return list(self._answer.tools_used) if isinstance(self._answer, ToolTurn) else []

    @property
    def timings(self) -> dict[str, float]:
        ttft = self._total if self._ttft is None else self._ttft
        return {"ttft_ms": round(ttft * 1000, 1), "total_ms": round(self._total * 1000, 1)}

    async def events(self) -> AsyncIterator[Event | str]:
        """The turn as events; a `str` is an SSE comment (a keep-alive). Errors after the first
        event become an `error` event, and nothing of the turn is kept."""
        yield Event(
            "agent",
            {
                "name": self._owner.persona.name,
                "model": self.model,
                "sessionId": self.session_id,
                "userId": self._ask.user_id,
            },
        )
        try:
            async for item in self._stream():
                yield item
            await self._save()
        except GatewayError as exc:
            log.warning("stateful turn in session %s failed: %s", self.session_id, exc.message)
            yield Event("error", exc.body()["error"])
            return
        except Exception:
            log.exception("stateful turn in session %s failed", self.session_id)
            yield Event("error", GatewayError("internal error").body()["error"])
            return
        done = {
            "fullText": self.text,
            "suggestions": await self.follow_ups(),
            "timings": self.timings,
            "sessionId": self.session_id,
            "model": self.model,
            "sources": sources(self.tools_used),
            "usage": self.usage,
        }
        yield Event("done", done)

    async def result(self) -> dict[str, Any]:
        """The whole turn, kept, as `/chat` answers it."""
        async for _ in self._stream():
            pass
        await self._save()
        return {
            "session_id": self.session_id,
            "user_id": self._ask.user_id,
            "answer": self.text,
            "model": self.model,
            "tools_used": [outcome.summary() for outcome in self.tools_used],
            "sources": sources(self.tools_used),
            "timings": self.timings,
            "usage": self.usage,
        }

    async def _stream(self) -> AsyncIterator[Event | str]:
        parts: list[str] = []
        started_tools = completed = 0
        try:
            async for item in self._answer.chunks():
                if isinstance(item, str):
                    # The tool loop says "running <names>" as its tools start, then keeps alive.
                    if item.startswith(RUNNING):
                        for name in item.removeprefix(RUNNING).split(", "):
                            yield Event("tool_call_started", {"name": name, "index": started_tools})
                            started_tools += 1
                    yield item
                    continue
                for event in self._completed(completed):
                    completed += 1
                    yield event
                for choice in item["choices"]:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        self._ttft = self._ttft or time.perf_counter() - self._started
                        parts.append(content)
                        yield Event("token", {"text": content})
            for event in self._completed(completed):
                yield event
        finally:
            self.text = "".join(parts)
            self._total = time.perf_counter() - self._started

    def _completed(self, already: int) -> Iterator[Event]:
        for index, outcome in enumerate(self.tools_used[already:], start=already):
            yield Event("tool_call_completed", {"index": index, **outcome.summary()})

    @property
    def usage(self) -> dict[str, int]:
        return self._usage()[0]

    def _usage(self) -> tuple[dict[str, int], bool]:
        """The usage the upstream reported, else counted; and whether it was counted."""
        usage = self._answer.usage or {}
        if usage.get("total_tokens"):
            keys = ("prompt_tokens", "completion_tokens", "total_tokens")
            return {key: int(usage.get(key) or 0) for key in keys}, False
        prompt, completion = self._context.packed.tokens, self._context.counter.count(self.text)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }, True

    async def _save(self) -> None:
        owner, now = self._owner, int(time.time())
        user: Message = {"role": "user", "content": self._ask.text, "created_at": now}
        assistant: Message = {
            "role": "assistant",
            "content": self.text,
            "created_at": now,
            "model": self.model,
        }
        tools = self.tools_used
        if tools:
            assistant["tools_used"] = [outcome.name for outcome in tools]
        usage, estimated = self._usage()
        timings = self.timings
        metric = {
            "at": time.time(),
            "model": self.model,
            **timings,
            "tool_calls": [
                {"name": o.name, "ok": o.ok, "duration_ms": round(o.seconds * 1000, 1)}
                for o in tools
            ],
            **usage,
            "tokens_estimated": estimated,
            "context_tokens": self._context.packed.tokens,
            "history_turns": self._context.packed.turns,
        }
        totals = {
            "turns": 1,
            "messages": 2,
            "tool_calls": len(tools),
            "tool_errors": sum(1 for o in tools if not o.ok),
            **usage,
            "ttft_ms": round(timings["ttft_ms"]),
            "total_ms": round(timings["total_ms"]),
        }
        record = TurnRecord([user, assistant], metric, totals)
        if await owner.store.append_turn(self.session_id, self._ask.user_id, record) is None:
            raise NotFound(f"no session '{self.session_id}'", param="session_id")
        settings = owner.settings
        to_fold = fold_count(
            [*self._context.unfolded, user, assistant],
            persona=owner.persona.instructions(),
            k=settings.short_term_k,
            budget=settings.token_budget,
            max_messages=settings.max_session_messages,
            counter=self._context.counter,
        )
        if to_fold:
            session = self._context.session
            folded = session.folded if session else 0
            owner.folder.schedule(self.session_id, self.model, folded + to_fold)

    async def follow_ups(self) -> list[str]:
        """Three follow-up questions: the model's, topped up with generic ones."""
        settings = self._owner.settings
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": FOLLOW_UP_PROMPT},
                {"role": "user", "content": f"User: {self._ask.text}\nAssistant: {self.text}"},
            ],
            "max_tokens": FOLLOW_UP_MAX_TOKENS,
            "temperature": 0.7,
        }
        reply = ""
        try:
            async with asyncio.timeout(settings.request_timeout):
                opened = await self._owner.router.open_stream(self.model, body, Needs())
                completion = await Turn(
                    opened, include_usage=False, total_timeout=settings.request_timeout
                ).collect()
            reply = completion["choices"][0]["message"].get("content") or ""
        except (GatewayError, TimeoutError) as exc:
            log.info("no follow-up questions from %s: %s", self.model, exc)
        return parse_follow_ups(reply)


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
