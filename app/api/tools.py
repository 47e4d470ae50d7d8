"""The gateway's tools over HTTP: list them, and run one directly with JSON arguments."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import ToolsDep
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json
from app.tools.registry import ToolRegistry

router = APIRouter()
seed_router = APIRouter(prefix="/api/v1/tools")

_ARGUMENTS = {
    "type": "object",
    "additionalProperties": True,
    "description": "The tool's arguments, as its `parameters` in GET /v1/tools describe them "
    "(no body: no arguments)",
}
_ERRORS = errors(400, 404, 502, 504)
_BODY = request_body(_ARGUMENTS, required=False)


@router.get("/tools")
async def list_tools(tools: ToolsDep) -> Response:
    return JSON({"object": "list", "data": tools.schemas()})


@router.post("/tools/{name}", responses=_ERRORS, openapi_extra=_BODY)
async def run_tool(name: str, request: Request, tools: ToolsDep) -> Response:
    return await _run(tools, name, request)


@seed_router.post("/search", responses=_ERRORS, openapi_extra=_BODY)
async def search(request: Request, tools: ToolsDep) -> Response:
    return await _run(tools, "web_search", request)


@seed_router.post("/fetch", responses=_ERRORS, openapi_extra=_BODY)
async def fetch(request: Request, tools: ToolsDep) -> Response:
    return await _run(tools, "fetch_url", request)


@seed_router.post("/search-and-fetch", responses=_ERRORS, openapi_extra=_BODY)
async def search_and_fetch(request: Request, tools: ToolsDep) -> Response:
    return await _run(tools, "search_and_fetch", request)


async def _run(tools: ToolRegistry, name: str, request: Request) -> Response:
    tools.get(name)
    raw = await request.body()
    arguments = parse_json(raw) if raw.strip() else {}
    started = time.perf_counter()
    result = await tools.run(name, arguments)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return JSON({"tool": name, "result": result, "duration_ms": elapsed})
