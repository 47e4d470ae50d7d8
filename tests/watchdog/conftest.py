"""A webhook receiver on loopback for the watchdog's alerts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.serve import serve
from tests.fakes.webhook import Webhook


@pytest.fixture
def webhook() -> Iterator[tuple[Webhook, str]]:
    """The receiver and the URL to give as ALERT_WEBHOOK_URL."""
    receiver = Webhook()
    with serve(receiver.app) as url:
        yield receiver, f"{url}/hook"
