"""The registry: plugins, ENABLED_TOOLS, time limits, and outcomes the tool loop can always use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.errors import InvalidRequest, NotFound, ToolError, ToolTimeout
from app.tools.context import Register, ToolContext
from app.tools.registry import ToolRegistry, load_registry
from tests.conftest import DEFAULT_TOOLS, gateway_settings


async def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


async def slow(seconds: float) -> str:
    """Sleeps."""
    await asyncio.sleep(seconds)
    return "done"


async def broken() -> str:
    """Fails like a real service can."""
    raise ToolError("the service is unreachable: connection refused")


async def crashing() -> str:
    """Has a bug."""
    raise ZeroDivisionError("oops")


async def system_info() -> str:
    """Off by default."""
    return "cpu"


async def big() -> str:
    """Returns a lot."""
    return "x" * 5000


def plugin(register: Register, context: ToolContext) -> None:
    for function in (add, slow, broken, crashing, system_info, big):
        register(function)


@pytest.fixture
async def context() -> AsyncIterator[ToolContext]:
    context = ToolContext.open(
        gateway_settings(enabled_tools=None, tool_timeout=0.3, tool_result_max_chars=1000).tools,
        2.0,
    )
    yield context
    await context.aclose()


def test_default_enables_all_but_system_info(context: ToolContext) -> None:
    registry = load_registry(context, [plugin])
    assert "system_info" in registry.tools
    assert list(registry.enabled) == ["add", "slow", "broken", "crashing", "big"]


def test_enabled_tools_is_exact_and_unknown_names_are_reported() -> None:
    registry = ToolRegistry(timeout=1, result_max_chars=1000)
    registry.register(add)
    registry.register(system_info)
    assert registry.enable(["system_info", "nope"]) == ["nope"]
    assert list(registry.enabled) == ["system_info"]
    assert registry.enable([]) == []
    assert registry.enabled == {}


def test_the_builtin_tools_are_registered(context: ToolContext) -> None:
    registry = load_registry(context)
    expected = set(DEFAULT_TOOLS)
    assert list(registry.enabled) == DEFAULT_TOOLS
    assert set(registry.tools) == expected | {"system_info"}
    for schema in registry.schemas():
        assert schema["function"]["description"]
        assert schema["function"]["parameters"]["type"] == "object"


def test_duplicate_names_are_refused() -> None:
    registry = ToolRegistry(timeout=1, result_max_chars=1000)
    registry.register(add)
    with pytest.raises(ValueError, match="already"):
        registry.register(add)


async def test_run_returns_the_result_and_raises_typed_errors(context: ToolContext) -> None:
    registry = load_registry(context, [plugin])
    assert await registry.run("add", {"a": 2, "b": "3"}) == 5
    with pytest.raises(InvalidRequest) as bad:
        await registry.run("add", {"a": 2})
    assert bad.value.param == "b"
    with pytest.raises(NotFound):
        await registry.run("system_info", {})
    with pytest.raises(ToolTimeout, match=r"0\.3s"):
        await registry.run("slow", {"seconds": 5})
    with pytest.raises(ToolError, match="unreachable"):
        await registry.run("broken", {})


@pytest.mark.parametrize(
    ("name", "arguments", "ok", "says"),
    [
        ("add", '{"a": 1, "b": 2}', True, "3"),
        ("add", '{"a": 1', False, "not valid JSON"),
        ("nope", "{}", False, "no enabled tool is named 'nope'"),
        ("slow", {"seconds": 5}, False, "did not finish within 0.3s"),
        ("broken", None, False, "unreachable"),
        ("crashing", None, False, "crashing failed unexpectedly (ZeroDivisionError)"),
    ],
)
async def test_call_never_raises(
    context: ToolContext, name: str, arguments: Any, ok: bool, says: str
) -> None:
    registry = load_registry(context, [plugin])
    outcome = await registry.call(name, arguments)
    assert outcome.ok is ok
    assert says in outcome.content
    summary = outcome.summary()
    assert summary["name"] == name
    assert summary["ok"] is ok
    assert ("error" in summary) is not ok
    assert summary["duration_ms"] >= 0


async def test_long_results_are_cut_for_the_model(context: ToolContext) -> None:
    registry = load_registry(context, [plugin])
    outcome = await registry.call("big", {})
    assert outcome.content.startswith("x" * 1000)
    assert outcome.content.endswith("[cut at TOOL_RESULT_MAX_CHARS]")
    assert len(outcome.content) < 1100


async def test_arguments_are_shown_as_json(context: ToolContext) -> None:
    registry = load_registry(context, [plugin])
    assert (await registry.call("add", '{"a": 1, "b": 2}')).arguments == {"a": 1, "b": 2}
    assert (await registry.call("add", "{oops")).arguments == "{oops"


async def echoing(query: str) -> str:
    """Fails quoting its argument, as a tool saying what it could not find does."""
    raise ToolError(f"nothing found for '{query}'")


async def test_a_failure_is_logged_without_its_message_which_may_quote_the_arguments(
    context: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    def echoing_plugin(register: Register, _: ToolContext) -> None:
        register(echoing)

    registry = load_registry(context, [echoing_plugin])
    caplog.set_level(logging.INFO, logger="app.tools.registry")
    outcome = await registry.call("echoing", {"query": "my SECRET plans"})
    assert "my SECRET plans" in outcome.content  # the model is told
    assert [r.getMessage() for r in caplog.records] == ["tool echoing failed: tool_error"]
