"""The turn engine, with no HTTP in sight: persona, routing (once per turn), the response cache,
server-side tools, and the answer as events.

A request takes the short path (one upstream stream, read as events) unless the gateway's tools
apply: tools are enabled, one choice is asked for, and the client did not say `tool_choice:
"none"`. Then a model with function calling is offered the tools and the tool loop runs them; a
model without gets the tool the detector picks from the user's message, run before it answers.

A model without function calling that is sent the client's own tools (OpenWebUI sends its
native tools with every chat) answers without them: they are not sent, the turn says so
(`Turn.tools_dropped`), and the first time for each model the log does too.

OpenWebUI's background tasks (titles, tags, follow-ups, … see `chat/tasks.py`) go out as sent:
no persona, no tools, to TASK_MODEL when it is set, behind the users' turns on a local model.

A model `pipeline/<id>` is a pipeline's (`Engine.pipelines`, set by the composition root): the
turn is grounded as any other, then the pipeline answers it; its background tasks go to
TASK_MODEL, else to the pipeline's answering model.

A raw completion (`complete`) is a turn of its own kind: its prompts continued as they are
(`chat/completion.py`), with no persona, tools or cache.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Collection
from dataclasses import replace
from typing import Any, Protocol

from app.chat.completion import as_chat, in_order
from app.chat.context import counter_for, last_user_text, text_of
from app.chat.events import NO_USAGE, Event
from app.chat.grounding import NOTHING, Asker, Grounder, Placed, placed_messages, render
from app.chat.persona import Persona
from app.chat.replay import replayed, store
from app.chat.tasks import task_kind
from app.chat.tool_loop import LoopSettings, ToolLoop, tool_name
from app.chat.turn import Meter, Turn, read
from app.config import ProviderSettings, ToolSettings
from app.errors import GatewayError, InvalidRequest, NoCompletions
from app.ids import new_id
from app.ops.logging import exchange
from app.ops.observers import Observers
from app.providers.router import Needs, OpenStream, Route, Router
from app.state.cache import Caches
from app.tools import detector
from app.tools.detector import Detected
from app.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

_CLASSIFY_MAX_TOKENS = 128
GATEWAY_FIELDS = ("cache", "rag", "memory")
"""Request fields the gateway reads and upstreams do not know."""
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")


class PipelineTurns(Protocol):
    """The pipelines, as the engine sees them."""

    def answering_model(self, model: str | None) -> str | None:
        """For a pipeline's model id, the model its answer comes from ("" for DEFAULT_MODEL);
        None for any other model."""

    async def open(
        self, body: dict[str, Any], needs: Needs, route: Route, placed: Placed | None
    ) -> Turn:
        """The pipeline's turn for `body`, grounded already with what is `placed` (None: the
        turn is grounded for no one); `route` is its answering model's."""


class Engine:
    def __init__(
        self,
        *,
        router: Router,
        persona: Persona,
        registry: ToolRegistry,
        caches: Caches,
        providers: ProviderSettings,
        tools: ToolSettings,
        grounder: Grounder,
        observers: Observers | None = None,
    ) -> None:
        self.router = router
        self._observers = observers
        self.grounder = grounder
        self.persona = persona
        self._registry = registry
        self._caches = caches
        self._total_timeout = providers.total_timeout
        self._request_timeout = providers.request_timeout
        self._task_model = providers.task_model
        self._detection = tools.tool_detection
        self._loop = LoopSettings(
            max_steps=tools.max_tool_steps,
            total_timeout=providers.total_timeout,
            keepalive=tools.tool_keepalive,
        )
        self._without_function_calling: set[str] = set()
        self._dropped_logged: set[str] = set()
        self.pipelines: PipelineTurns | None = None

    def _answering(self, model: str | None) -> str | None:
        """For a pipeline's model, the model its answer comes from; None for any other."""
        return None if self.pipelines is None else self.pipelines.answering_model(model)

    def is_pipeline(self, model: str | None) -> bool:
        return self._answering(model) is not None

    async def resolve(self, model: str | None) -> Route:
        """`model`'s route; a pipeline's answering model's for a pipeline."""
        answering = self._answering(model)
        return await self.router.resolve(model if answering is None else answering)

    def limited(self, tools: Collection[str], *, persona: bool = True) -> Engine:
        """This engine, offering only the gateway's tools named in `tools` that are enabled,
        and without the persona unless `persona` (its caches, breakers and what it learned of
        models stay shared): for the steps of a pipeline."""
        narrow = copy.copy(self)
        narrow._registry = self._registry.only(tools)
        if not persona:
            narrow.persona = Persona(name=self.persona.name)
        return narrow

    async def chat(
        self,
        body: dict[str, Any],
        needs: Needs,
        route: Route | None = None,
        task: str = "",
        asker: Asker | None = None,
        placed: Placed | None = None,
    ) -> Turn:
        """The turn of `body` (a validated OpenAI chat request), opened: its first chunk has
        come, so that failures before it can still be answered with an HTTP status. A cacheable
        request is answered from the response cache when it can be, and stored when not.
        `route`, when given, is `body`'s model already resolved; `task` names the background
        task the client says the request is (OpenWebUI's `X-OpenWebUI-Task: {{TASK}}`).
        `asker`: the user the turn is grounded for (`chat/grounding.py`), with the grounding
        already `placed` in `body` by a stateful turn, else looked up here."""
        opening = self.open_chat(body, needs, route, task, asker, placed)
        return await self.observed("chat", body.get("model"), opening)

    async def open_chat(
        self,
        body: dict[str, Any],
        needs: Needs,
        route: Route | None = None,
        task: str = "",
        asker: Asker | None = None,
        placed: Placed | None = None,
    ) -> Turn:
        """`chat`'s turn, unobserved: for a caller that observes a turn of its own around it
        (a stateful turn)."""
        if (told := exchange.get(None)) is not None and told.content:
            told.question = _last_user_message(body["messages"])
        if kind := task or task_kind(body["messages"]):
            return await self._task(body, kind, needs)
        model = body.get("model")
        answering = self._answering(model)  # once: it decides the route and the branch below
        route = route or await self.router.resolve(model if answering is None else answering)
        messages: list[dict[str, Any]] = body["messages"]
        question = last_user_text(messages) if asker else ""
        if (
            asker is not None
            and placed is None
            and (grounding := await self.grounder.recall(asker, question))
        ):
            counter = counter_for(route.id)
            placed = render(grounding, counter, self.grounder.room(messages, counter))
            messages = placed_messages(messages, placed)
        pipelines = self.pipelines
        if pipelines is not None and answering is not None:
            grounded = {**body, "messages": messages}
            shown = None if asker is None else placed or NOTHING
            turn = await pipelines.open(grounded, needs, route, shown)
        else:
            upstream = {**body, "messages": self.persona.apply(messages)}
            for field in GATEWAY_FIELDS:  # the gateway's own: upstreams refuse unknown fields
                upstream.pop(field, None)
            turn = await self._cached(body, upstream, route, needs)
        if asker is not None:
            turn.source = self.grounder.events(
                turn.source, asker, placed or NOTHING, question, route
            )
        return turn

    async def _cached(
        self, body: dict[str, Any], upstream: dict[str, Any], route: Route, needs: Needs
    ) -> Turn:
        cache = self._caches.llm
        if not cache.wants(body, needs.choices):
            return await self._answer(upstream, route, needs)
        key = cache.key(upstream, route.id, self._registry.enabled)
        record = await cache.get(key)
        hit = None if record is None else replayed(record)
        if hit is not None:
            return hit
        turn = await self._answer(upstream, route, needs)
        turn.cache = "miss" if cache.available else "bypass"
        if turn.model == route.id:  # not a fallback's answer
            store(turn, cache, key, self._caches.tools.ttl)
        return turn

    async def observed(self, operation: str, model: str | None, opening: Awaitable[Turn]) -> Turn:
        """The turn `opening` gives, observed as its events pass (a failure to open it, at
        once): in the metrics, and in a span of its own whose children are the turn's provider
        attempts, tools and retrieval. `model` is the one the client asked for. Answers from
        the response cache are not model turns for the metrics."""
        observers = self._observers
        if observers is None:
            return await opening
        tracing = observers.tracing
        span = None if tracing is None else tracing.turn(operation, model or "")
        started = time.perf_counter()  # after the span's start: the turn's times fall within it
        try:
            turn = await (opening if span is None else span.within(opening))
        except BaseException as exc:
            meter = Meter(observers.metrics, span, operation, started)
            meter.record("", 0.0, NO_USAGE, [], _error_type(exc))
            raise
        if span is not None:
            span.cached(turn.cache)
            turn.source = span.events(turn.source)
        metrics = None if turn.cache == "hit" else observers.metrics
        if metrics is not None or span is not None:
            turn.meter = Meter(metrics, span, operation, started)
        return turn

    async def complete(self, body: dict[str, Any], needs: Needs) -> Turn:
        """The turn of `body`, a validated completions request whose `prompt` is a list of
        strings, each continued as is, in order, within one TOTAL_TIMEOUT. Natively where the
        provider completes prompts, else as a chat (retries, breakers and fallbacks either
        way). The first prompt's first chunk has come."""
        if (told := exchange.get(None)) is not None and told.content:
            told.question = body["prompt"][-1]
        return await self.observed(
            "text_completion", body.get("model"), self._complete(body, needs)
        )

    async def _complete(self, body: dict[str, Any], needs: Needs) -> Turn:
        if self.is_pipeline(body.get("model")):
            message = f"{body['model']} answers chats: ask it on /v1/chat/completions"
            raise InvalidRequest(message, param="model")
        route = await self.router.resolve(body.get("model"))
        deadline = time.monotonic() + self._total_timeout

        async def opened(prompt: str) -> OpenStream:
            one = {**body, "prompt": prompt}
            try:
                return await self.router.open(route, one, replace(needs, completion=True))
            except NoCompletions:
                return await self.router.open(route, as_chat(one), needs)

        async def answer(prompt: str) -> AsyncIterator[Event]:
            return read(await opened(prompt), deadline, self._total_timeout)

        prompts: list[str] = body["prompt"]
        first = await opened(prompts[0])
        events = read(first, deadline, self._total_timeout)
        return Turn(
            first.route.id, in_order(events, prompts, answer, needs.choices), id=new_id("cmpl-")
        )

    async def _task(self, body: dict[str, Any], kind: str, needs: Needs) -> Turn:
        """A background task's turn: the request as sent, to TASK_MODEL when it is set."""
        route = await self.resolve(self._task_model or body.get("model"))
        log.debug("background task %s for %s", kind, route.id)
        upstream = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
        return await self._plain(upstream, route, replace(needs, background=True))

    async def _answer(self, upstream: dict[str, Any], route: Route, needs: Needs) -> Turn:
        """The turn of `upstream` (the request with the persona applied)."""
        client_tools = {tool_name(t) for t in upstream.get("tools") or []}
        if client_tools and not self._calls_tools(route):
            return await self._without_client_tools(upstream, route, needs)
        if not self._tools_apply(upstream, needs, client_tools):
            try:
                return await self._plain(upstream, route, needs)
            except InvalidRequest as exc:
                if not (client_tools and self._refuses_tools(route, exc)):
                    raise
                return await self._without_client_tools(upstream, route, needs)

        def tool_turn(detected: Detected | None) -> ToolLoop:
            return ToolLoop(
                router=self.router,
                registry=self._registry,
                body=upstream,
                route=route,
                detected=detected,
                client_tools=client_tools,
                settings=self._loop,
                needs=needs,
            )

        if self._calls_tools(route):
            loop = tool_turn(None)
            try:
                await loop.open()
                return Turn(route.id, loop.events(), lists_tools=True)
            except InvalidRequest as exc:
                if not self._refuses_tools(route, exc):
                    raise
                if client_tools:
                    return await self._without_client_tools(upstream, route, needs)
        detected = await self._detect(upstream, route)
        if detected is None:
            return await self._plain(upstream, route, needs)
        return Turn(route.id, tool_turn(detected).events(), lists_tools=True)

    def _calls_tools(self, route: Route) -> bool:
        return route.provider.capabilities.tools and route.id not in self._without_function_calling

    def _refuses_tools(self, route: Route, exc: InvalidRequest) -> bool:
        """Whether `exc` is `route`'s upstream refusing the offer of tools; it is remembered."""
        if "tool" not in exc.message.lower():
            return False
        log.info("%s has no function calling (%s): tools by detection", route.id, exc.message)
        self._without_function_calling.add(route.id)
        return True

    async def _without_client_tools(
        self, upstream: dict[str, Any], route: Route, needs: Needs
    ) -> Turn:
        """The turn of `upstream` without the client's tools, which `route` cannot call."""
        if route.id not in self._dropped_logged:
            self._dropped_logged.add(route.id)
            log.warning(
                "%s cannot call tools: requests for it are answered without the client's tools",
                route.id,
            )
        bare = {k: v for k, v in upstream.items() if k not in _TOOL_FIELDS}
        turn = await self._answer(bare, route, replace(needs, tools=False))
        turn.tools_dropped = len(upstream.get("tools") or [])
        return turn

    def _tools_apply(self, body: dict[str, Any], needs: Needs, client_tools: set[str]) -> bool:
        """Not when the client constrains the choice (`none`, `required`, a named function):
        offered beside the client's tools, the gateway's would break the constraint."""
        return (
            needs.choices == 1
            and body.get("tool_choice", "auto") == "auto"
            and body.get("function_call", "auto") == "auto"
            and any(name not in client_tools for name in self._registry.enabled)
        )

    async def _plain(self, body: dict[str, Any], route: Route, needs: Needs) -> Turn:
        opened = await self.router.open(route, body, needs)
        deadline = time.monotonic() + self._total_timeout
        return Turn(opened.route.id, read(opened, deadline, self._total_timeout))

    async def _detect(self, body: dict[str, Any], route: Route) -> Detected | None:
        """The tool the last user message asks for: by pattern, then (TOOL_DETECTION=model) by
        asking the model itself."""
        text = last_user_text(body["messages"])
        if self._detection == "off" or not text:
            return None
        enabled = self._registry.enabled
        found = detector.detect(text, enabled)
        if found is not None or self._detection != "model":
            return found
        intent = self._caches.intent
        if (hit := await intent.get(text, enabled, route.id)) is not None:
            return None if hit.value is None else Detected(**hit.value)
        question = [
            {"role": "system", "content": detector.classification_prompt(self._registry.schemas())},
            {"role": "user", "content": text},
        ]
        try:
            reply = await self.router.ask(
                route, question, max_tokens=_CLASSIFY_MAX_TOKENS, within=self._request_timeout
            )
        except GatewayError as exc:
            log.warning("tool classification by %s failed: %s", route.id, exc.message)
            return None
        found = detector.parse_classification(reply, enabled)
        stored = None if found is None else {"name": found.name, "arguments": found.arguments}
        await intent.put(text, enabled, route.id, stored)
        return found


def _error_type(exc: BaseException) -> str:
    """How a turn that failed is recorded, as `Turn.events` does."""
    if isinstance(exc, GatewayError):
        return exc.code
    return "_OTHER" if isinstance(exc, Exception) else "cancelled"


def _last_user_message(messages: list[dict[str, Any]]) -> str:
    """The text of the last message a user sent, for the content log (LOG_CONTENT)."""
    return next((text_of(m) for m in reversed(messages) if m.get("role") == "user"), "")
