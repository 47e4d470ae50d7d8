"""The tools the gateway knows, which of them are enabled, and calling them within their time.

Tools come from plugins: a plugin is a function `register_tools(register, context)` that calls
`register(async_function)` once per tool. The built-in tools are one such plugin
(`app.tools.builtin`); other packages add theirs through the `ai_gateway.tools` entry point group.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import orjson

from app.errors import GatewayError, NotFound, ToolTimeout
from app.state.cache import ToolCache
from app.tools import builtin
from app.tools.base import Tool, ToolFunction
from app.tools.context import Plugin, ToolContext

log = logging.getLogger(__name__)

OFF_BY_DEFAULT = frozenset({"system_info"})
ENTRY_POINT_GROUP = "ai_gateway.tools"


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """One call as the tool loop sees it: never an exception, always something to tell the
    model."""

    name: str
    arguments: dict[str, Any] | str
    ok: bool
    content: str
    seconds: float

    @staticmethod
    def shown(arguments: str | dict[str, Any] | None) -> dict[str, Any] | str:
        """Arguments as the answers show them: the JSON object when they are one."""
        if arguments is None:
            return {}
        if isinstance(arguments, str):
            with contextlib.suppress(orjson.JSONDecodeError):
                return orjson.loads(arguments) if arguments.strip() else {}
        return arguments

    def summary(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "arguments": self.arguments,
            "ok": self.ok,
            "duration_ms": round(self.seconds * 1000, 2),
        }
        if not self.ok:
            entry["error"] = self.content
        return entry


class ToolRegistry:
    def __init__(
        self, timeout: float, result_max_chars: int, cache: ToolCache | None = None
    ) -> None:
        self.tools: dict[str, Tool] = {}
        self.enabled: dict[str, Tool] = {}
        self._schemas: list[tuple[str, dict[str, Any]]] = []
        self._timeout = timeout
        self._max_chars = result_max_chars
        self._cache = cache

    def register(self, function: ToolFunction, name: str | None = None) -> Tool:
        tool = Tool.from_function(function, name)
        if tool.name in self.tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self.tools[tool.name] = tool
        return tool

    def enable(self, names: Iterable[str] | None) -> list[str]:
        """Enable `names` (None: every tool but those off by default); returns the names that
        match no registered tool."""
        wanted = [n for n in self.tools if n not in OFF_BY_DEFAULT] if names is None else names
        self.enabled = {n: self.tools[n] for n in wanted if n in self.tools}
        self._schemas = [(name, tool.schema()) for name, tool in self.enabled.items()]
        return [n for n in wanted if n not in self.tools]

    def only(self, names: Collection[str]) -> ToolRegistry:
        """A view of this registry with only the enabled tools in `names` enabled."""
        view = copy.copy(self)
        view.enabled = {n: tool for n, tool in self.enabled.items() if n in names}
        view._schemas = [(n, schema) for n, schema in self._schemas if n in view.enabled]
        return view

    def schemas(self, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """The enabled tools as OpenAI `tools` entries (shared dicts: do not change them)."""
        return [schema for name, schema in self._schemas if name not in exclude]

    def get(self, name: str) -> Tool:
        tool = self.enabled.get(name)
        if tool is None:
            raise NotFound(f"no enabled tool is named '{name}'; GET /v1/tools lists them")
        return tool

    async def run(self, name: str, arguments: str | dict[str, Any] | None) -> Any:
        """The tool's result, from the tool cache when the tool's results are cached; raises
        `InvalidRequest` for bad arguments, `ToolError` for a failed service, `ToolTimeout` after
        TOOL_TIMEOUT."""
        tool = self.get(name)
        kwargs = tool.parse(arguments)
        cache = self._cache
        if cache is None or not cache.ttl(name):
            return await self._run(tool, kwargs)
        hit = await cache.get(name, kwargs)
        if hit is not None:
            return hit.value
        result = await self._run(tool, kwargs)
        await cache.put(name, kwargs, result)
        return result

    async def _run(self, tool: Tool, kwargs: dict[str, Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await tool.function(**kwargs)
        except TimeoutError:
            raise ToolTimeout(f"{tool.name} did not finish within {self._timeout:g}s") from None

    async def call(self, name: str, arguments: str | dict[str, Any] | None) -> ToolOutcome:
        shown = ToolOutcome.shown(arguments)
        started = time.perf_counter()
        try:
            result = await self.run(name, arguments)
        except GatewayError as exc:
            log.info("tool %s failed: %s", name, exc.code)  # the message may quote what was asked
            return ToolOutcome(name, shown, False, f"Error: {exc.message}", _since(started))
        except Exception as exc:
            log.exception("tool %s crashed", name)
            message = f"Error: {name} failed unexpectedly ({type(exc).__name__})"
            return ToolOutcome(name, shown, False, message, _since(started))
        return ToolOutcome(name, shown, True, self._render(result), _since(started))

    def _render(self, result: Any) -> str:
        text = result if isinstance(result, str) else orjson.dumps(result).decode()
        if len(text) > self._max_chars:
            text = text[: self._max_chars] + " …[cut at TOOL_RESULT_MAX_CHARS]"
        return text


def _since(started: float) -> float:
    return time.perf_counter() - started


def load_registry(
    context: ToolContext, plugins: Iterable[Plugin] | None = None, cache: ToolCache | None = None
) -> ToolRegistry:
    """A registry filled by the built-in plugin and every installed one, with ENABLED_TOOLS
    applied, that keeps results in `cache` for the tools TOOL_CACHE_TTL names."""
    settings = context.settings
    registry = ToolRegistry(settings.tool_timeout, settings.tool_result_max_chars, cache)
    if plugins is None:
        plugins = [builtin.register_tools, *_installed_plugins()]
    for plugin in plugins:
        plugin(registry.register, context)
    unknown = registry.enable(settings.enabled_tools)
    for name in unknown:
        log.warning("ENABLED_TOOLS names %r, which no installed tool provides", name)
    return registry


def _installed_plugins() -> list[Plugin]:
    plugins = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugins.append(point.load())
        except Exception:
            log.exception("could not load tool plugin %s", point.name)
    return plugins
