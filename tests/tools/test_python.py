"""The `python` tool through the registry and a real gateway: results, refusals, time limits."""

from __future__ import annotations

import asyncio
import glob
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import psutil
import pytest

from app.errors import InvalidRequest, ToolError, ToolTimeout
from app.security.sandbox import PROCESS_LABEL
from app.tools import python
from app.tools.context import ToolContext
from app.tools.registry import ToolRegistry
from tests.conftest import MakeGateway, gateway_settings

LIMITS: dict[str, Any] = {
    "python_timeout": 2.0,
    "python_memory_mb": 128,
    "python_max_processes": 8,
    "python_output_limit": 100,
}


@pytest.fixture
async def registry() -> AsyncIterator[ToolRegistry]:
    context = ToolContext.open(gateway_settings(**LIMITS).tools, 2.0)
    registry = ToolRegistry(timeout=10, result_max_chars=10_000)
    python.register_tools(registry.register, context)
    registry.enable(None)
    yield registry
    await context.aclose()


def sandbox_processes() -> list[psutil.Process]:
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if PROCESS_LABEL in (process.info["cmdline"] or [])
    ]


def test_schema_tells_the_model_what_it_gets(registry: ToolRegistry) -> None:
    function = registry.get("python").schema()["function"]
    assert function["name"] == "python"
    assert function["parameters"]["required"] == ["code"]
    assert "print()" in function["description"]
    assert "No network" in function["description"]
    assert "at most 2 s and 128 MB" in function["description"]


async def test_returns_what_the_program_printed(registry: ToolRegistry) -> None:
    result = await registry.run("python", {"code": "import math\nprint(math.factorial(20))"})
    assert result["stdout"] == "2432902008176640000\n"
    assert result["stderr"] == ""
    assert result["exit_code"] == 0
    assert result["timed_out"] is False
    assert result["truncated"] is False
    assert result["duration_ms"] > 0
    assert not result["isolation"].startswith("WEAKER")
    assert "landlock" in result["isolation"]


async def test_a_model_call_with_json_arguments(registry: ToolRegistry) -> None:
    outcome = await registry.call("python", '{"code": "print(sum(range(101)))"}')
    assert outcome.ok
    assert orjson.loads(outcome.content)["stdout"] == "5050\n"


async def test_errors_come_back_as_the_program_s_stderr(registry: ToolRegistry) -> None:
    result = await registry.run("python", {"code": "print('before')\n{}['missing']"})
    assert result["stdout"] == "before\n"
    assert result["exit_code"] == 1
    assert "KeyError: 'missing'" in result["stderr"]


async def test_long_output_is_cut(registry: ToolRegistry) -> None:
    result = await registry.run("python", {"code": "print('x' * 100_000)"})
    assert result["stdout"] == "x" * 50 + "\n[… cut …]\n" + "x" * 49 + "\n"
    assert result["truncated"] is True


async def test_empty_code_is_refused(registry: ToolRegistry) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await registry.run("python", {"code": "  \n"})
    assert caught.value.param == "code"


async def test_a_sandbox_that_cannot_start_is_a_tool_error(
    registry: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.executable", "/nonexistent/python3")
    with pytest.raises(ToolError, match="python: could not start"):
        await registry.run("python", {"code": "print(1)"})


async def test_tool_timeout_kills_the_program() -> None:
    context = ToolContext.open(gateway_settings(**{**LIMITS, "python_timeout": 30.0}).tools, 2.0)
    registry = ToolRegistry(timeout=0.5, result_max_chars=10_000)
    python.register_tools(registry.register, context)
    registry.enable(None)
    workdirs = set(glob.glob(f"{tempfile.gettempdir()}/{PROCESS_LABEL}-*"))
    try:
        with pytest.raises(ToolTimeout):
            await registry.run("python", {"code": "while True:\n    pass"})
    finally:
        await context.aclose()
    assert set(glob.glob(f"{tempfile.gettempdir()}/{PROCESS_LABEL}-*")) == workdirs
    deadline = time.monotonic() + 5
    while left := sandbox_processes():
        assert time.monotonic() < deadline, f"left running: {left}"
        await asyncio.sleep(0.05)


async def test_the_gateway_keeps_serving_while_code_spins(make_gateway: MakeGateway) -> None:
    url = make_gateway(enabled_tools=["python"], tool_plugins=[python.register_tools], **LIMITS)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        spin = asyncio.create_task(
            client.post("/v1/tools/python", json={"code": "while True:\n    pass"})
        )
        answered = []
        while not spin.done():
            started = time.monotonic()
            health = await client.get("/health")
            answered.append((health.status_code, time.monotonic() - started))
            await asyncio.sleep(0.1)
        response = await spin
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["timed_out"] is True
    assert result["exit_code"] is None
    assert len(answered) >= 5
    assert all(status == 200 for status, _ in answered)
    assert max(seconds for _, seconds in answered) < 1.0
