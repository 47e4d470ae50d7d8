"""Answers in the response cache, kept as their events: a hit plays them back, so it reads on any
wire exactly as the answer it repeats did (but for its fresh id and time); a miss is stored once
it has completed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from app.chat.events import Event, Finish, ToolFinished, Waiting, from_record, to_record
from app.chat.turn import Turn
from app.errors import GatewayError
from app.state.cache import ResponseCache

RECORD_VERSION = 2


def replayed(record: dict[str, Any]) -> Turn | None:
    """The turn of a stored answer; None for a record this version cannot play (one stored by
    an older gateway), which is then answered afresh and stored again."""
    if record.get("version") != RECORD_VERSION:
        return None
    try:
        events = [from_record(item) for item in record["events"]]
        model, lists_tools = str(record["model"]), bool(record["lists_tools"])
    except (GatewayError, KeyError, TypeError):
        return None
    return Turn(model, play(events), lists_tools=lists_tools, cache="hit")


async def play(events: Sequence[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


def store(turn: Turn, cache: ResponseCache, key: str, tool_ttl: Callable[[str], float]) -> None:
    """Have `turn` stored under `key` once it has completed."""
    turn.source = _storing(turn, turn.source, cache, key, tool_ttl)


async def _storing(
    turn: Turn,
    source: AsyncIterator[Event],
    cache: ResponseCache,
    key: str,
    tool_ttl: Callable[[str], float],
) -> AsyncIterator[Event]:
    """`source` passed through, then stored under `key` when it completed: every choice
    finished, no error, the client stayed to the end. An answer is kept no longer than the
    results of the tools it used (`tool_ttl`), and not at all when one of them failed or is not
    cached: a cached answer is only as fresh as they are."""
    kept: list[Event] = []
    finished = False
    ttl = cache.ttl
    async for event in source:
        match event:
            case Waiting():
                pass
            case Finish():
                finished = True
                kept.append(event)
            case ToolFinished(outcome=outcome):
                ttl = min(ttl, tool_ttl(outcome.name) if outcome.ok else 0.0)
                kept.append(event)
            case _:
                kept.append(event)
        yield event
    if finished and ttl > 0:
        record = {
            "version": RECORD_VERSION,
            "model": turn.model,
            "lists_tools": turn.lists_tools,
            "events": [to_record(event) for event in kept],
        }
        await cache.put(key, record, ttl)
