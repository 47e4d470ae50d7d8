"""POST /v1/chat/completions.

This is the hot path, so it is a plain Starlette endpoint: FastAPI's dependency solving and
response handling would cost more than the rest of the gateway's own work per request."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from app.api.answer import streamed, whole
from app.api.deps import asker, services
from app.api.schemas import ChatCompletionRequest, parse_json, validate
from app.api.wire import openai_chat
from app.chat.engine import Engine
from app.chat.grounding import Asker
from app.chat.turn import Turn
from app.providers.router import Needs

TASK_HEADER = "x-openwebui-task"
"""OpenWebUI fills it with the task's name when the connection sets `X-OpenWebUI-Task:
{{TASK}}`, and leaves it empty for a user's chat."""


async def chat_completions(request: Request) -> Response:
    """Create a chat completion (OpenAI's wire format, streamed or not)."""
    gateway = services(request)
    body = parse_json(await request.body())
    req = validate(ChatCompletionRequest, body)
    needs = Needs(
        tools=bool(req.tools),
        choices=req.n or 1,
        whole=not req.stream,
        custom_tools=any(tool.type == "custom" for tool in req.tools or ()),
    )
    task = request.headers.get(TASK_HEADER, "").strip()
    grounded = asker(request, body)
    if req.stream:
        turn = await gateway.engine.chat(body, needs, task=task, asker=grounded)
        options = openai_chat.StreamOptions(
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
            # a line in the content would corrupt JSON output and the client's own tool turns
            activity_in_content=gateway.settings.tools.tool_activity_in_content
            and (req.response_format or {}).get("type", "text") == "text"
            and not req.tools,
            status_events=_wants_status(request, gateway.settings.tools.status_events),
            base_url=_base_url(request),
        )
        return streamed(request, turn, openai_chat.stream(turn, options), grounded.owner)
    work = _whole(gateway.engine, body, needs, task, grounded, _base_url(request))
    return await whole(request, work, grounded.owner)


async def _whole(
    engine: Engine, body: dict[str, Any], needs: Needs, task: str, grounded: Asker, base_url: str
) -> tuple[Turn, dict[str, Any]]:
    turn = await engine.chat(body, needs, task=task, asker=grounded)
    return turn, await openai_chat.completion(turn, base_url)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _wants_status(request: Request, setting: str) -> bool:
    """STATUS_EVENTS: on, off, or auto — to OpenWebUI, known by the `X-OpenWebUI-*` headers it
    sends when it forwards user info or is set up with the task header."""
    if setting != "auto":
        return setting == "on"
    return any(name.startswith(b"x-openwebui-") for name, _ in request.scope["headers"])


class _Route(Route):
    """A Starlette route that puts itself in the scope as FastAPI's do, for the metrics' label."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


routes = [
    _Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"])
    for prefix in ("/v1", "")
]
