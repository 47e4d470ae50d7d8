"""In process, without a broker (BROKER_URL empty): a request runs its handler here, with the
same deadline and errors as through a broker. The handler is given the caller's payload itself,
not a copy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from app.broker.worker import Handler
from app.errors import GatewayError, TaskFailed, TaskTimeout


class LocalTasks:
    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def request(self, kind: str, payload: dict[str, Any], deadline: float) -> dict[str, Any]:
        remaining = deadline - time.time()
        if remaining <= 0:
            raise TaskTimeout(f"the {kind} task's deadline had passed before it was sent")
        handler = self._handlers.get(kind)
        if handler is None:
            raise TaskFailed(f"no handler for task kind {kind!r}")
        timeout = asyncio.timeout(remaining)
        try:
            async with timeout:
                return await handler(payload)
        except GatewayError:
            raise
        except TimeoutError as exc:
            if timeout.expired():
                message = f"the {kind} task did not finish within {remaining:.3g}s"
                raise TaskTimeout(message) from None
            raise TaskFailed(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise TaskFailed(f"{type(exc).__name__}: {exc}") from exc
