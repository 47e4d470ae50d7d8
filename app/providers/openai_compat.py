"""One provider for every `/v1` server: OpenAI, vLLM, llama.cpp server and the like."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from app.errors import GatewayError, InvalidRequest, ModelNotFound, NoCompletions, UpstreamError
from app.providers.base import Capabilities, Chunk, Embeddings, looks_like_embedding
from app.providers.http import error_message, iter_lines, raise_for_status, translate_errors

log = logging.getLogger(__name__)

_GATEWAY_FIELDS = frozenset({"model", "stream", "stream_options"})
_NO_MODEL = re.compile(r"model\b.*\b(does not exist|not found)", re.IGNORECASE)
"""How OpenAI, vLLM and Ollama word a missing model, whatever the path."""


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
        self._completes = True
        """False once the upstream answered that it has no `/completions`."""
        self._chat_only: set[str] = set()
        """Models the upstream refused on `/completions` (OpenAI's chat models)."""

    def _payload(self, model: str, body: dict[str, Any]) -> bytes:
        payload = {k: v for k, v in body.items() if k not in _GATEWAY_FIELDS and v is not None}
        user = payload.get("user")
        if isinstance(user, dict):
            payload["user"] = str(user.get("id") or user.get("email") or user.get("name") or "")
        payload["model"] = model
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
        return orjson.dumps(payload)

    def stream_chat(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        return self._stream("/chat/completions", model, body)

    async def stream_completion(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        """`{base}/completions`, its `text_completion` chunks as chat chunks. An upstream
        without that path (404 or 405, not about the model), or a model it refuses there (as
        OpenAI does its chat models), is remembered and answered `NoCompletions` from then on."""
        if not self._completes or model in self._chat_only:
            raise NoCompletions(f"{self.name}: '{model}' has no /completions")
        stream = self._stream("/completions", model, body, missing=self._without_completions)
        async with aclosing(stream) as chunks:
            async for chunk in chunks:
                yield {**chunk, "choices": [_as_delta(c) for c in chunk.get("choices") or ()]}

    def _without_completions(self, model: str, status: int, raw: bytes) -> GatewayError:
        """What a 404 or 405 from `/completions` says: the model does not exist, the model
        does not complete prompts there, or the upstream has no such path."""
        message = error_message(raw)
        error = _error_object(raw)
        if error.get("code") == "model_not_found" or _NO_MODEL.search(message):
            return ModelNotFound(f"{self.name}: model '{model}' not found ({message})")
        if status == 404 and (error.get("param") == "model" or "model" in message.lower()):
            self._chat_only.add(model)
            log.info(
                "%s: %s has no /completions (%s): it is asked to chat", self.name, model, message
            )
        else:
            self._completes = False
            log.info(
                "%s has no /completions (%d %s): prompts are asked as chats",
                self.name,
                status,
                message,
            )
        return NoCompletions(f"{self.name}: '{model}' has no /completions ({message})")

    async def _stream(
        self,
        path: str,
        model: str,
        body: dict[str, Any],
        *,
        missing: Callable[[str, int, bytes], GatewayError] | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """The `data:` chunks of `path`'s SSE answer up to `[DONE]`; the connection goes back
        to the pool after `[DONE]`, and is closed when the reader leaves before. A 404 or 405
        is `missing(model, status, body)` when that is given."""
        async with translate_errors(self.name):
            resp = await self._session.post(
                self._base + path,
                data=self._payload(model, body),
                headers=self._headers,
                timeout=self._timeout,
            )
            done = False
            try:
                if missing is not None and resp.status in (404, 405):
                    raise missing(model, resp.status, await resp.read())
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


def _as_delta(choice: dict[str, Any]) -> dict[str, Any]:
    """A `text_completion` choice as a chat chunk's."""
    return {
        "index": choice.get("index") or 0,
        "delta": {"content": choice.get("text") or ""},
        "finish_reason": choice.get("finish_reason"),
    }


def _error_object(raw: bytes) -> dict[str, Any]:
    """The OpenAI error object in `raw` (`{"error": {...}}`, or vLLM's bare one), else {}."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    error = data.get("error", data) if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _in_band_message(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
