"""In process (BROKER_URL empty): the same request, deadline and errors, no broker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.broker import LocalTasks, TaskClient, tasks_for
from app.config import load_settings
from app.errors import InvalidRequest, TaskFailed, TaskTimeout


async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return {"echo": payload}


async def slow(payload: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(5)
    return {}


async def refuse(payload: dict[str, Any]) -> dict[str, Any]:
    raise InvalidRequest("no", param="q")


async def broken(payload: dict[str, Any]) -> dict[str, Any]:
    return {"x": 1 / 0}


HANDLERS = {"echo": echo, "slow": slow, "refuse": refuse, "broken": broken}


def test_without_broker_url_tasks_run_in_process() -> None:
    assert isinstance(tasks_for(load_settings(_env_file=None).pipelines, HANDLERS), LocalTasks)
    with_url = load_settings(_env_file=None, broker_url="nats://127.0.0.1:1").pipelines
    assert isinstance(tasks_for(with_url, HANDLERS), TaskClient)


async def test_a_local_request_answers_and_fails_as_a_remote_one() -> None:
    tasks = LocalTasks(HANDLERS)
    await tasks.open()
    assert await tasks.request("echo", {"a": 1}, time.time() + 1) == {"echo": {"a": 1}}
    with pytest.raises(InvalidRequest):
        await tasks.request("refuse", {}, time.time() + 1)
    with pytest.raises(TaskFailed, match="ZeroDivisionError"):
        await tasks.request("broken", {}, time.time() + 1)
    with pytest.raises(TaskFailed, match="no handler for task kind 'nope'"):
        await tasks.request("nope", {}, time.time() + 1)
    with pytest.raises(TaskTimeout):
        await tasks.request("echo", {}, time.time() - 1)
    began = time.monotonic()
    with pytest.raises(TaskTimeout):
        await tasks.request("slow", {}, time.time() + 0.2)
    assert 0.15 < time.monotonic() - began < 0.5
    await tasks.close()
