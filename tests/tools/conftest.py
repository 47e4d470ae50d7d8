"""A fake Open-Meteo on loopback, shared by the weather and time tools' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.serve import serve


@pytest.fixture
def meteo() -> FakeOpenMeteo:
    return FakeOpenMeteo()


@pytest.fixture
def meteo_url(meteo: FakeOpenMeteo) -> Iterator[str]:
    with serve(meteo.app) as url:
        yield url
