"""Ollama over its native API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/pull`), pulling
missing models on demand; `/api/tags` and `/api/show` say which models only embed."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from app.config import ProviderSettings
from app.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from app.providers import ollama_wire as wire
from app.providers.base import Capabilities, Chunk, Embeddings, looks_like_embedding
from app.providers.http import error_message, iter_lines, raise_for_status, translate_errors

log = logging.getLogger(__name__)

# Each /api/show when the models are listed, within the router's budget for the whole listing.
_SHOW_TIMEOUT = 2.0
# "the input length exceeds the context length", answered 400, 413 or 500 by version.
_CONTEXT_OVERFLOW = re.compile(r"exceeds the (maximum )?context", re.IGNORECASE)


class OllamaProvider:
    name = "ollama"
    capabilities = Capabilities(tools=True, multiple_choices=False, embeddings=True)

    def __init__(self, settings: ProviderSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._base = settings.ollama_base_url
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.request_timeout
        )
        self._pulls: dict[str, asyncio.Task[None]] = {}
        self._shown: dict[str, frozenset[str] | None] = {}
        """Capabilities by model digest, as `/api/show` gave them (None: it does not say)."""
        self._embedding_only: dict[str, bool] = {}
        """By listed name (with its tag), as of the last listing."""

    async def list_models(self) -> list[str]:
        async with translate_errors(self.name):
            data = await self._get_json("/api/tags")
        listed = {str(m["name"]): m for m in data.get("models") or [] if m.get("name")}
        capabilities = await self._capabilities(listed)
        self._embedding_only = {
            name: _embedding_only(name, m, capabilities[name]) for name, m in listed.items()
        }
        return list(listed)

    def embedding_only(self, model: str) -> bool:
        known = self._embedding_only.get(_tagged(model))
        return looks_like_embedding(model) if known is None else known

    async def health(self) -> str:
        async with translate_errors(self.name):
            data = await self._get_json("/api/version")
        return f"ollama {data.get('version', 'unknown version')}"

    async def embed(
        self, model: str, inputs: list[str] | list[list[int]], dimensions: int | None
    ) -> Embeddings:
        if not all(isinstance(item, str) for item in inputs):
            raise InvalidRequest("ollama: embeddings take text input, not token ids", param="input")
        payload: dict[str, Any] = {"model": model, "input": inputs}
        if dimensions is not None:
            payload["dimensions"] = dimensions
        if self._settings.ollama_keep_alive is not None:
            payload["keep_alive"] = self._settings.ollama_keep_alive
        async with translate_errors(self.name):
            resp = await self._post("/api/embed", model, payload)
            try:
                data = self._object(await resp.read())
            finally:
                resp.release()
        vectors = data.get("embeddings")
        if not isinstance(vectors, list) or len(vectors) != len(inputs):
            raise UpstreamError(self.name, "embedding answer does not match the input")
        return Embeddings(vectors=vectors, prompt_tokens=int(data.get("prompt_eval_count") or 0))

    def stream_chat(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        return self._stream("/api/chat", model, body, wire.chat_request)

    def stream_completion(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        """Natively, through `/api/generate` in raw mode: the prompt is continued as it is, as
        `/v1/completions` means, where a chat would wrap it in the model's template."""
        return self._stream("/api/generate", model, body, wire.generate_request)

    async def _stream(
        self, path: str, model: str, body: dict[str, Any], request: wire.Request
    ) -> AsyncGenerator[Chunk, None]:
        """The NDJSON answer of `path` to `request(body)` as OpenAI chunks."""
        settings = self._settings
        payload = request(
            model, body, num_ctx=settings.ollama_num_ctx, keep_alive=settings.ollama_keep_alive
        )
        converter = wire.ChunkConverter()
        async with translate_errors(self.name):
            resp = await self._post(path, model, payload)
            try:
                async with aclosing(iter_lines(resp.content)) as lines:  # left when done
                    async for raw in lines:
                        line = self._parse_line(raw)
                        if line is None:
                            continue
                        if "error" in line:
                            raise UpstreamError(self.name, str(line["error"]))
                        for chunk in converter.feed(line):
                            yield chunk
                        if converter.done:
                            break
            finally:
                if converter.done:
                    resp.release()
                else:
                    # Dropping the connection is how Ollama learns to stop generating.
                    resp.close()
        if not converter.done:
            raise UpstreamError(self.name, "stream ended before the answer was complete")

    async def aclose(self) -> None:
        pulls = list(self._pulls.values())
        for task in pulls:
            task.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)

    def _parse_line(self, raw: bytes) -> dict[str, Any] | None:
        return self._object(raw) if raw.strip() else None

    def _object(self, raw: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(self.name, f"unexpected answer: {raw[:200]!r}")
        return data

    async def _capabilities(
        self, listed: dict[str, dict[str, Any]]
    ) -> dict[str, frozenset[str] | None]:
        """Each listed model's capabilities. `/api/show` is asked once per model digest: its
        answer is kept, its failure (an error, or no answer within `_SHOW_TIMEOUT`) is not, and
        leaves the model to be judged by family and name this time."""
        digests = {name: str(m.get("digest") or name) for name, m in listed.items()}
        shown = {d: self._shown[d] for d in digests.values() if d in self._shown}
        new = [name for name, digest in digests.items() if digest not in shown]
        answers = await asyncio.gather(*map(self._show, new), return_exceptions=True)
        for name, answer in zip(new, answers, strict=True):
            if isinstance(answer, GatewayError | TimeoutError):
                log.debug("ollama: no capabilities for %r: %s", name, str(answer) or "timed out")
            elif isinstance(answer, BaseException):
                raise answer
            else:
                shown[digests[name]] = answer
        self._shown = shown
        return {name: shown.get(digest) for name, digest in digests.items()}

    async def _show(self, model: str) -> frozenset[str] | None:
        """`/api/show`'s capabilities of `model` (`completion`, `embedding`, `tools`, ...); None
        when this Ollama does not say (before 0.6.4)."""
        async with (
            asyncio.timeout(_SHOW_TIMEOUT),
            translate_errors(self.name),
            self._session.post(
                self._base + "/api/show",
                data=orjson.dumps({"model": model}),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            ) as resp,
        ):
            await raise_for_status(self.name, model, resp)
            capabilities = self._object(await resp.read()).get("capabilities")
        return frozenset(map(str, capabilities)) if isinstance(capabilities, list) else None

    async def _get_json(self, path: str) -> dict[str, Any]:
        async with self._session.get(self._base + path, timeout=self._timeout) as resp:
            if resp.status == 404:
                raise UpstreamError(
                    self.name, f"{path} not found: is {self._base} an Ollama server?"
                )
            await raise_for_status(self.name, "", resp)
            return self._object(await resp.read())

    async def _post(self, path: str, model: str, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST and return the open, successful response; a missing model is pulled (once,
        shared by concurrent requests) and the request sent again."""
        resp = await self._send(path, payload)
        if resp.status == 404:
            message = error_message(await resp.read())
            if "model" in message and "not found" in message:
                resp.release()
                if not self._settings.ollama_auto_pull:
                    raise ModelNotFound(
                        f"model '{model}' is not available on Ollama; run `ollama pull {model}` "
                        "or set OLLAMA_AUTO_PULL=true"
                    )
                await self._pull_once(model)
                resp = await self._send(path, payload)
        if resp.status >= 400:
            try:
                message = error_message(await resp.read())
                if _CONTEXT_OVERFLOW.search(message):
                    raise UpstreamRejected(
                        f"{self.name}: {message}",
                        error_type="invalid_request_error",
                        code="context_length_exceeded",
                        param="input" if path == "/api/embed" else "messages",
                    )
                await raise_for_status(self.name, model, resp)
            finally:
                resp.release()
        return resp

    async def _send(self, path: str, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        return await self._session.post(
            self._base + path,
            data=orjson.dumps(payload),
            headers={"Content-Type": "application/json"},
            timeout=self._timeout,
        )

    async def _pull_once(self, model: str) -> None:
        task = self._pulls.get(model)
        if task is None:
            task = asyncio.create_task(self._pull(model), name=f"ollama-pull-{model}")
            self._pulls[model] = task
            task.add_done_callback(lambda done: self._forget_pull(model, done))
        try:
            # A waiter that goes away must not cancel the pull the others wait for.
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                raise UpstreamError(self.name, f"pull of model '{model}' was cancelled") from None
            raise

    def _forget_pull(self, model: str, task: asyncio.Task[None]) -> None:
        if self._pulls.get(model) is task:
            del self._pulls[model]
        if not task.cancelled():
            task.exception()

    async def _pull(self, model: str) -> None:
        timeout = self._settings.ollama_pull_timeout
        log.info("ollama: model %r is missing; pulling it", model)
        try:
            async with asyncio.timeout(timeout), translate_errors(self.name):
                await self._stream_pull(model)
        except TimeoutError:
            raise UpstreamTimeout(
                self.name, f"pulling model '{model}' took longer than {timeout:g}s"
            ) from None
        log.info("ollama: pulled model %r", model)

    async def _stream_pull(self, model: str) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._settings.connect_timeout)
        progress = _PullProgress(model)
        async with self._session.post(
            self._base + "/api/pull",
            data=orjson.dumps({"model": model, "stream": True}),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        ) as resp:
            await raise_for_status(self.name, model, resp)
            async with aclosing(iter_lines(resp.content)) as lines:  # left at success
                async for raw in lines:
                    line = self._parse_line(raw)
                    if line is None:
                        continue
                    if "error" in line:
                        raise ModelNotFound(f"ollama: cannot pull model '{model}': {line['error']}")
                    progress.update(line)
                    if line.get("status") == "success":
                        return
        raise UpstreamError(self.name, f"pull of model '{model}' ended without success")


def _tagged(model: str) -> str:
    """`model` as Ollama lists it: an untagged name means `:latest`."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def _embedding_only(name: str, listed: dict[str, Any], capabilities: frozenset[str] | None) -> bool:
    """Capabilities, where Ollama gives them, decide; else a BERT family in the listing's
    details (nomic-bert, bert: what Ollama's embedding models are built on), else the name."""
    if capabilities is not None:
        return "embedding" in capabilities and "completion" not in capabilities
    details = listed.get("details") or {}
    families = [details.get("family") or "", *(details.get("families") or [])]
    return any("bert" in str(family) for family in families) or looks_like_embedding(name)


class _PullProgress:
    """Logs status changes and roughly every 10% of a download, not every line."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._status = ""
        self._decile = -1

    def update(self, line: dict[str, Any]) -> None:
        status = str(line.get("status", ""))
        if status != self._status:
            self._status, self._decile = status, -1
            log.info("ollama: pulling %r: %s", self._model, status)
        total, completed = line.get("total"), line.get("completed")
        if isinstance(total, int) and isinstance(completed, int) and total > 0:
            decile = min(10, completed * 10 // total)
            if decile > self._decile:
                self._decile = decile
                log.info(
                    "ollama: pulling %r: %s %d%% of %.1f MB",
                    self._model,
                    status,
                    decile * 10,
                    total / 1e6,
                )
