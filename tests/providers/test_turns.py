"""One generation at a time on a local model, users' turns first: a task waits behind users, and a
user's turn stops a running task."""

from __future__ import annotations

import asyncio

from app.providers.turns import Ticket, Turns


async def test_users_go_before_waiting_tasks_and_stop_a_running_one() -> None:
    turns = Turns()
    order: list[str] = []
    running = Ticket(background=True)
    await turns.acquire(running)  # a task is generating

    async def wait(name: str, background: bool) -> None:
        await turns.acquire(Ticket(background))
        order.append(name)

    waiting = [
        asyncio.create_task(wait("task-2", True)),
        asyncio.create_task(wait("user-1", False)),
    ]
    await asyncio.sleep(0)
    assert running.shed, "the user's turn stops the running task"
    assert running.stop.is_set()
    turns.release()  # the stopped task ends
    await asyncio.sleep(0)
    assert order == ["user-1"]
    turns.release()
    await asyncio.gather(*waiting)
    assert order == ["user-1", "task-2"]
    turns.release()
    assert turns.idle


async def test_a_user_s_turn_is_never_shed_and_tasks_queue_behind_it() -> None:
    turns = Turns()
    user = Ticket(background=False)
    await turns.acquire(user)
    task = asyncio.create_task(turns.acquire(Ticket(background=True)))
    other_user = asyncio.create_task(turns.acquire(Ticket(background=False)))
    await asyncio.sleep(0)
    assert not task.done()
    assert not other_user.done()
    assert not user.shed
    assert not user.stop.is_set()
    turns.release()
    await other_user
    assert not task.done(), "the second user goes before the earlier task"
    turns.release()
    await task
    turns.release()
    assert turns.idle


async def test_a_waiter_that_leaves_is_forgotten() -> None:
    turns = Turns()
    await turns.acquire(Ticket(background=False))
    leaving = asyncio.create_task(turns.acquire(Ticket(background=False)))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    turns.release()
    assert turns.idle
