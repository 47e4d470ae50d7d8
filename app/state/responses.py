"""Responses kept for `previous_response_id` and `GET /v1/responses/{id}`, in Redis:

    response:<id>:<owner>    string   JSON {"response": the response object, "input": the
                                      conversation's input items up to this response}

The owner is part of the key, so another owner's response is simply not there. Each response
lives RESPONSES_TTL seconds from when it was stored.

Any Redis failure raises `StateUnavailable` (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from app.state.redis import reachable

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    input: list[Item]
    """Every input item the model was given (the chain's earlier inputs and outputs, then this
    request's input); the instructions are not among them."""

    @property
    def conversation(self) -> list[Item]:
        """The items a response that follows this one starts from."""
        return [*self.input, *self.response["output"]]


def _key(response_id: str, owner: str) -> str:
    return f"response:{response_id}:{owner}"


class ResponseStore:
    def __init__(self, redis: aioredis.Redis, *, ttl: float) -> None:
        self._redis = redis
        self._ttl_ms = max(1, round(ttl * 1000))

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        with reachable("response store"):
            raw = await self._redis.get(_key(response_id, owner))
        if raw is None:
            return None
        data = orjson.loads(raw)
        return StoredResponse(data["response"], data["input"])

    async def put(self, owner: str, stored: StoredResponse) -> None:
        value = orjson.dumps({"response": stored.response, "input": stored.input})
        with reachable("response store"):
            await self._redis.set(_key(stored.response["id"], owner), value, px=self._ttl_ms)

    async def delete(self, owner: str, response_id: str) -> bool:
        """Whether there was such a response."""
        with reachable("response store"):
            return bool(await self._redis.delete(_key(response_id, owner)))
