"""One provider for every `/v1` server: OpenAI, vLLM, llama.cpp server and the like."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from app.errors import InvalidRequest, UpstreamError
from app.providers.base import Capabilities, Chunk, Embeddings, looks_like_embedding
from app.providers.http import iter_lines, raise_for_status, translate_errors

_GATEWAY_FIELDS = frozenset({"model", "stream", "stream_options"})


class OpenAICompatProvider:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        *,
        connect_timeout: float,
        request_timeout: float,
        capabilities: Capabilities,
        health_url: str | None = None,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self._base = base_url.rstrip("/")
        self._health_url = health_url or f"{self._base}/models"
        self._session = session
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=request_timeout
        )

    def _payload(self, model: str, body: dict[str, Any]) -> bytes:
        payload = {k: v for k, v in body.items() if k not in _GATEWAY_FIELDS and v is not None}
        user = payload.get("user")
        if isinstance(user, dict):
            payload["user"] = str(user.get("id") or user.get("email") or user.get("name") or "")
        payload["model"] = model
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
        return orjson.dumps(payload)

    async def stream_chat(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        async with translate_errors(self.name):
            resp = await self._session.post(
                f"{self._base}/chat/completions",
                data=self._payload(model, body),
                headers=self._headers,
                timeout=self._timeout,
            )
            done = False
            try:
                await raise_for_status(self.name, model, resp)
                async with aclosing(iter_lines(resp.content)) as lines:  # left at [DONE]
                    async for line in lines:
                        if not line.startswith(b"data:"):
                            continue
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            done = True
                            return
                        chunk = orjson.loads(data)
                        if "error" in chunk:
                            raise UpstreamError(self.name, _in_band_message(chunk["error"]))
                        yield chunk
            finally:
                if done:
                    resp.release()
                else:
                    resp.close()

    async def list_models(self) -> list[str]:
        data = await self._get_json(f"{self._base}/models")
        return [str(item["id"]) for item in data.get("data", []) if "id" in item]

    def embedding_only(self, model: str) -> bool:
        """By name: `/v1/models` does not say what a model does."""
        return looks_like_embedding(model)

    async def embed(
        self, model: str, inputs: list[str] | list[list[int]], dimensions: int | None
    ) -> Embeddings:
        payload: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            payload["dimensions"] = dimensions
        async with (
            translate_errors(self.name),
            self._session.post(
                f"{self._base}/embeddings",
                data=orjson.dumps(payload),
                headers=self._headers,
                timeout=self._timeout,
            ) as resp,
        ):
            await raise_for_status(self.name, model, resp)
            data = orjson.loads(await resp.read())
        items = sorted(data.get("data", []), key=lambda item: item.get("index", 0))
        if not all(isinstance(item.get("embedding"), list) for item in items):
            raise InvalidRequest(f"{self.name}: the upstream did not return float embeddings")
        usage = data.get("usage") or {}
        return Embeddings(
            vectors=[item["embedding"] for item in items],
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
        )

    async def health(self) -> str:
        await self._get_json(self._health_url)
        return self._base

    async def aclose(self) -> None:
        return None

    async def _get_json(self, url: str) -> dict[str, Any]:
        async with (
            translate_errors(self.name),
            self._session.get(url, headers=self._headers, timeout=self._timeout) as resp,
        ):
            await raise_for_status(self.name, "", resp)
            data = orjson.loads(await resp.read())
        return data if isinstance(data, dict) else {}


def _in_band_message(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
