"""Shared by the tools' tests: a fake Open-Meteo on loopback, and a registry holding one
plugin's tools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.config import load_settings
from app.tools.context import Plugin, ToolContext
from app.tools.registry import ToolRegistry
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.serve import serve


@pytest.fixture
def meteo() -> FakeOpenMeteo:
    return FakeOpenMeteo()


@pytest.fixture
def meteo_url(meteo: FakeOpenMeteo) -> Iterator[str]:
    with serve(meteo.app) as url:
        yield url


@asynccontextmanager
async def registry_of(plugin: Plugin, **settings: Any) -> AsyncIterator[ToolRegistry]:
    """A registry with `plugin`'s tools enabled, built on `settings`; closed afterwards."""
    loaded = load_settings(_env_file=None, **settings)
    context = ToolContext.open(loaded.tools, loaded.providers.connect_timeout)
    registry = ToolRegistry(timeout=10, result_max_chars=8000)
    plugin(registry.register, context)
    registry.enable(None)
    try:
        yield registry
    finally:
        await context.aclose()
