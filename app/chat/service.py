"""One chat turn, with no HTTP in sight: persona, routing, server-side tools, and the answer's
stream.

A request takes the short path (one upstream stream, passed through) unless the gateway's tools
apply: tools are enabled, one choice is asked for, and the client did not say `tool_choice:
"none"`. Then a model with function calling is offered the tools and the tool loop runs them; a
model without gets the tool the detector picks from the user's message, run before it answers.
"""

from __future__ import annotations

import logging
from typing import Any

from app.chat.context import text_of
from app.chat.persona import Persona
from app.chat.tool_loop import LoopSettings, ToolTurn, tool_name
from app.chat.turn import Answer, Turn
from app.config import Settings
from app.errors import GatewayError, InvalidRequest
from app.memory.cache import Caches
from app.memory.replay import CachedAnswer, CacheStatus, StoringAnswer
from app.providers.router import Needs, Route, Router
from app.tools import detector
from app.tools.detector import Detected
from app.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

_CLASSIFY_MAX_TOKENS = 128
# OpenWebUI's background tasks (titles, tags, follow-ups) quote the chat: no tools for them.
_OPENWEBUI_TASK = "### Task:"


class ChatService:
    def __init__(
        self,
        router: Router,
        persona: Persona,
        registry: ToolRegistry,
        settings: Settings,
        caches: Caches | None = None,
    ) -> None:
        self._router = router
        self.persona = persona
        self._registry = registry
        self._settings = settings
        self._loop = LoopSettings(
            max_steps=settings.max_tool_steps,
            total_timeout=settings.total_timeout,
            keepalive=settings.tool_keepalive,
            activity_in_content=settings.tool_activity_in_content,
        )
        self._without_function_calling: set[str] = set()
        self._caches = caches

    async def start(
        self, body: dict[str, Any], *, stream: bool, include_usage: bool, needs: Needs
    ) -> Answer:
        """Route `body` (a validated OpenAI chat request) and wait for the answer's first chunk,
        so that failures before it can still be answered with an HTTP status. A cacheable
        request is answered from the response cache when it can be, and stored when not."""
        upstream = {**body, "messages": self.persona.apply(body["messages"])}
        upstream.pop("cache", None)  # the gateway's own field: upstreams refuse unknown ones
        caches = self._caches
        if caches is None or not caches.llm.wants(body, needs.choices):
            return await self._answer(upstream, stream, include_usage, needs)
        cache = caches.llm
        route = await self._router.resolve(body.get("model"))
        key = cache.key(upstream, route.id, self._registry.enabled)
        cached = await cache.get(key)
        if cached is not None:
            return CachedAnswer(cached, include_usage=include_usage)
        status: CacheStatus = "miss" if cache.available else "bypass"
        answer = await self._answer(upstream, stream, include_usage, needs)
        return StoringAnswer(
            answer,
            cache=cache,
            key=key,
            model=route.id,
            status=status,
            tool_ttl=caches.tools.ttl,
            tool_status_in_stream=self._loop.activity_in_content,
        )

    async def _answer(
        self, upstream: dict[str, Any], stream: bool, include_usage: bool, needs: Needs
    ) -> Answer:
        """The answer of `upstream` (the request with the persona applied)."""
        client_tools = {tool_name(t) for t in upstream.get("tools") or []}
        if not self._tools_apply(upstream, needs, client_tools):
            return await self._plain(upstream, include_usage, needs)
        route = await self._router.resolve(upstream.get("model"))

        def tool_turn(detected: Detected | None) -> ToolTurn:
            return ToolTurn(
                router=self._router,
                registry=self._registry,
                body=upstream,
                model=route.id,
                detected=detected,
                client_tools=client_tools,
                stream=stream,
                include_usage=include_usage,
                settings=self._loop,
            )

        if route.provider.capabilities.tools and route.id not in self._without_function_calling:
            turn = tool_turn(None)
            try:
                await turn.open()
                return turn
            except InvalidRequest as exc:
                if client_tools or "tool" not in exc.message.lower():
                    raise
                log.info("%s has no function calling (%s): tools by detection", route.id, exc)
                self._without_function_calling.add(route.id)
        if client_tools:
            return await self._plain(upstream, include_usage, needs)
        detected = await self._detect(upstream, route)
        if detected is None:
            return await self._plain(upstream, include_usage, needs)
        return tool_turn(detected)

    def _tools_apply(self, body: dict[str, Any], needs: Needs, client_tools: set[str]) -> bool:
        return (
            needs.choices == 1
            and body.get("tool_choice") != "none"
            and any(name not in client_tools for name in self._registry.enabled)
            and not _last_user_text(body["messages"]).startswith(_OPENWEBUI_TASK)
        )

    async def _plain(self, body: dict[str, Any], include_usage: bool, needs: Needs) -> Turn:
        opened = await self._router.open_stream(body.get("model"), body, needs)
        return Turn(opened, include_usage=include_usage, total_timeout=self._settings.total_timeout)

    async def _detect(self, body: dict[str, Any], route: Route) -> Detected | None:
        """The tool the last user message asks for: by pattern, then (TOOL_DETECTION=model) by
        asking the model itself."""
        mode = self._settings.tool_detection
        text = _last_user_text(body["messages"])
        if mode == "off" or not text:
            return None
        enabled = self._registry.enabled
        found = detector.detect(text, enabled)
        if found is not None or mode != "model":
            return found
        intent = self._caches.intent if self._caches else None
        if intent is not None and (hit := await intent.get(text, enabled, route.id)) is not None:
            cached: Detected | None = hit.value
            return cached
        question = {
            "model": route.id,
            "messages": [
                {
                    "role": "system",
                    "content": detector.classification_prompt(self._registry.schemas()),
                },
                {"role": "user", "content": text},
            ],
            "temperature": 0,
            "max_tokens": _CLASSIFY_MAX_TOKENS,
        }
        try:
            opened = await self._router.open_stream(route.id, question, Needs())
            reply = await Turn(
                opened, include_usage=False, total_timeout=self._settings.request_timeout
            ).collect()
        except GatewayError as exc:
            log.warning("tool classification by %s failed: %s", route.id, exc.message)
            return None
        content = reply["choices"][0]["message"].get("content") or ""
        found = detector.parse_classification(content, enabled)
        if intent is not None:
            await intent.put(text, enabled, route.id, found)
        return found


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last message when a user sent it, else empty (a tool round goes on)."""
    last = messages[-1] if messages else {}
    return text_of(last) if last.get("role") == "user" else ""
