"""GET /debug/routes (admin keys only): every route the application has, read from the
application itself, with its methods, who may call it and what it does."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.responses import Response

from app.api.deps import AccessDep, require_admin
from app.api.openapi import errors
from app.api.responses import JSON
from app.security.auth import Access

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])

Need = Literal["public", "key", "admin"]


@router.get("/debug/routes", responses=errors(403))
async def debug_routes(request: Request, access: AccessDep) -> Response:
    """Every route: path, methods, auth need (`public`, `key` or `admin`) and summary."""
    routes = [_describe(context, access) for context in iter_route_contexts(request.app.routes)]
    routes.sort(key=lambda route: (route["path"], route["methods"]))
    return JSON({"object": "list", "keys_required": not access.keys.open, "data": routes})


def _describe(context: RouteContext, access: Access) -> dict[str, Any]:
    """One route, as the application serves it (its router's prefix included)."""
    path = context.path or ""
    original = context.original_route
    need: Need = "public" if access.is_public(path) else "key"
    if isinstance(original, APIRoute) and _depends_on(context.dependant, require_admin):
        need = "admin"
    summary = getattr(original, "summary", None) or _first_paragraph(context.endpoint)
    name = context.name or ""
    return {
        "path": path,
        "methods": sorted(context.methods or ()),
        "auth": need,
        "summary": summary or name.replace("_", " ").title(),
        "name": name,
    }


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _first_paragraph(endpoint: Callable[..., Any] | None) -> str:
    """The endpoint's docstring up to its first blank line, as one line."""
    doc = inspect.getdoc(endpoint) if endpoint is not None else None
    return " ".join((doc or "").split("\n\n")[0].split())
