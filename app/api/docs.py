"""The API's documentation, served with no network: Swagger UI at /docs and ReDoc at /redoc, whose
scripts, styles and icon are the fastapi-offline package's files, and the OpenAPI document at
/openapi.json. All of it is readable without a key; DOCS_ENABLED=false leaves it out."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

ASSETS = "/docs/assets"
PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""The documentation's pages; its assets are under ASSETS."""


def documented_app(enabled: bool, **options: Any) -> FastAPI:
    """A FastAPI application (`options` as FastAPI's), with the offline docs when `enabled`."""
    if enabled:
        return FastAPIOffline(static_url=ASSETS, **options)
    return FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **options)
