"""GET a JSON object from a tool's web service, with every failure as a `ToolError` that names
the service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from app.errors import ToolError


async def get_json(
    http: httpx.AsyncClient, service: str, url: str, params: Mapping[str, str | int | float]
) -> dict[str, Any]:
    try:
        response = await http.get(url, params=params)
    except httpx.TransportError as exc:
        raise ToolError(f"{service} is unreachable: {_reason(exc)}") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"{service} request failed: {_reason(exc)}") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_error:
        detail = data.get("reason") if isinstance(data, dict) else None
        suffix = f": {detail}" if isinstance(detail, str) and detail else ""
        raise ToolError(f"{service} answered HTTP {response.status_code}{suffix}")
    if not isinstance(data, dict):
        raise ToolError(f"{service} answered with something other than a JSON object")
    return data


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
