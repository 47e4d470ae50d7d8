"""The `/v1/chat/stream` wire: a turn as named server-sent events. `agent` when an agent starts
(`phase: "start"`) and, for a pipeline's agents, ends (`phase: "end"`, `duration_ms`, `tokens`,
`detail`), `tool_call_started` and `tool_call_completed` around each of the gateway's tools,
`token` (`{"text"}`) for each piece of text, then `done` (`{fullText, suggestions, timings,
sessionId, model, sources, usage, agents}`, `agents` being the ends in order) or `error` (the
OpenAI error object). Keep-alives are SSE comments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, assert_never

import orjson

from app.api.wire.sse import comment, mid_answer
from app.chat import events as ev
from app.chat.turn import Turn


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def stream(turn: Turn) -> AsyncIterator[bytes]:
    parts: list[str] = []
    started = finished = 0
    done: dict[str, Any] = {"suggestions": [], "timings": None, "sources": [], "agents": []}
    try:
        async for event in turn.events():
            match event:
                case ev.AgentStep(name=name, phase="start"):
                    yield _event(
                        "agent",
                        {
                            "name": name,
                            "model": turn.model,
                            "sessionId": turn.session_id,
                            "userId": turn.user_id,
                            "phase": "start",
                        },
                    )
                case ev.AgentStep(name=name, seconds=seconds, tokens=tokens, detail=detail):
                    ended = {"name": name, "duration_ms": round(seconds * 1000, 1)}
                    ended |= {"tokens": tokens, "detail": detail}
                    done["agents"].append(ended)
                    yield _event("agent", {**ended, "phase": "end"})
                case ev.Text(text=text):
                    parts.append(text)
                    yield _event("token", {"text": text})
                case ev.ToolStarted(name=name):
                    yield _event("tool_call_started", {"name": name, "index": started})
                    yield comment(f"running {name}")
                    started += 1
                case ev.Waiting(names=names):
                    yield comment("still running " + ", ".join(names))
                case ev.ToolFinished(outcome=outcome):
                    yield _event("tool_call_completed", {"index": finished, **outcome.summary()})
                    finished += 1
                case ev.Timings(ttft_ms=ttft, total_ms=total):
                    done["timings"] = {"ttft_ms": ttft, "total_ms": total}
                case ev.Sources(items=items):
                    done["sources"] += items
                case ev.Remembered(changes=changes):
                    yield _event("memory", {"changes": list(changes)})
                case ev.FollowUps(questions=questions):
                    done["suggestions"] = list(questions)
                case ev.Usage() | ev.Finish() | ev.Reasoning() | ev.Refusal() | ev.ToolCallDelta():
                    pass
                case _:
                    assert_never(event)
    except Exception as exc:
        yield _event("error", mid_answer(exc, f"turn of session {turn.session_id}").body()["error"])
        return
    yield _event(
        "done",
        {
            "fullText": "".join(parts),
            "suggestions": done["suggestions"],
            "timings": done["timings"],
            "sessionId": turn.session_id,
            "model": turn.model,
            "sources": done["sources"],
            "usage": (turn.usage or ev.NO_USAGE).public(),
            "agents": done["agents"],
        },
    )
