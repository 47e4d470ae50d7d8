"""The `/chat` wire: a turn as one JSON body (`session_id, user_id, answer, model, tools_used,
sources, memories, timings, usage`, and `suggestions` and `agents` when there are some;
`memories`: what the message changed in the user's memory; `agents`: each agent's step as it ended,
with its duration, tokens and detail); a failure is raised, to be answered with its HTTP
status."""

from __future__ import annotations

from typing import Any, assert_never

from app.chat import events as ev
from app.chat.turn import Turn


async def body(turn: Turn) -> dict[str, Any]:
    parts: list[str] = []
    used: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    memories: list[dict[str, str]] = []
    timings: dict[str, float] | None = None
    suggestions: list[str] = []
    agents: list[dict[str, Any]] = []
    async for event in turn.events():
        match event:
            case ev.Text(text=text):
                parts.append(text)
            case ev.ToolFinished(outcome=outcome):
                used.append(outcome.summary())
            case ev.Sources(items=items):
                sources += items
            case ev.Remembered(changes=changes):
                memories += changes
            case ev.Timings(ttft_ms=ttft, total_ms=total):
                timings = {"ttft_ms": ttft, "total_ms": total}
            case ev.FollowUps(questions=questions):
                suggestions = list(questions)
            case ev.AgentStep(phase="end", name=name, seconds=seconds):
                agents.append(
                    {
                        "name": name,
                        "duration_ms": round(seconds * 1000, 1),
                        "tokens": event.tokens,
                        "detail": event.detail,
                    }
                )
            case (
                ev.AgentStep()
                | ev.ToolStarted()
                | ev.Waiting()
                | ev.Usage()
                | ev.Finish()
                | ev.Reasoning()
                | ev.Refusal()
                | ev.ToolCallDelta()
            ):
                pass
            case _:
                assert_never(event)
    result: dict[str, Any] = {
        "session_id": turn.session_id,
        "user_id": turn.user_id,
        "answer": "".join(parts),
        "model": turn.model,
        "tools_used": used,
        "sources": sources,
        "memories": memories,
        "timings": timings,
        "usage": (turn.usage or ev.NO_USAGE).public(),
    }
    if suggestions:
        result["suggestions"] = suggestions
    if agents:
        result["agents"] = agents
    return result
