"""system_info: what psutil reports, measured off the event loop, and off by default."""

from __future__ import annotations

import asyncio
import contextlib
import time

from app.config import load_settings
from app.tools import system_info
from app.tools.context import ToolContext
from app.tools.registry import ToolRegistry


async def test_reports_the_host() -> None:
    answer = await system_info.system_info()
    assert 0 <= answer["cpu"]["percent"] <= 100
    assert answer["cpu"]["logical_cores"] >= 1
    assert len(answer["load_average"]) == 3
    for part in ("memory", "swap", "disk"):
        assert {"total", "used", "percent"} <= set(answer[part])
    assert answer["memory"]["total"].endswith("iB")
    assert answer["uptime_seconds"] > 0
    assert answer["uptime"].endswith("m")
    assert answer["source"] == "psutil on the gateway's host"


async def test_does_not_block_the_event_loop() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    await system_info.system_info()
    elapsed = time.perf_counter() - started
    ticker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticker
    assert elapsed >= system_info.CPU_SAMPLE_SECONDS * 0.9
    assert ticks >= 10


async def test_off_by_default() -> None:
    loaded = load_settings(_env_file=None)
    context = ToolContext.open(loaded.tools, loaded.providers.connect_timeout)
    try:
        registry = ToolRegistry(timeout=10, result_max_chars=8000)
        system_info.register_tools(registry.register, context)
        registry.enable(None)
        assert "system_info" not in registry.enabled
        registry.enable(["system_info"])
        outcome = await registry.call("system_info", {})
        assert outcome.ok
        assert '"cpu"' in outcome.content
    finally:
        await context.aclose()
