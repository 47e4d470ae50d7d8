"""Model id -> provider, and the fallback chain: retries with backoff, circuit breakers (per
provider and per model), and the move down `FALLBACK_MODELS` when a provider fails before its
first chunk."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.config import ProviderSettings
from app.errors import (
    AmbiguousModel,
    AnswerTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from app.providers.base import Chunk, Provider
from app.providers.breaker import Breakers

log = logging.getLogger(__name__)

_LIST_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider.name}/{self.model}"


@dataclass(frozen=True, slots=True)
class OpenStream:
    route: Route
    first: Chunk
    rest: AsyncGenerator[Chunk, None]


@dataclass(frozen=True, slots=True)
class Needs:
    tools: bool = False
    choices: int = 1
    whole: bool = False
    """The answer is used only once it is whole (not streamed): a failure anywhere in it, not
    only before its first chunk, may be retried and fall back."""
    background: bool = False
    """A background task (a title, tags, …): a local model serves users' turns first."""
    custom_tools: bool = False
    """The client's tools include OpenAI's free-form `custom` tools."""
    completion: bool = False
    """A raw completion of the body's prompt (`Provider.stream_completion`), not a chat."""
    follow_ups: bool = False
    """The caller shows follow-up questions after the answer (a pipeline then suggests them)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request to a provider, done: to the first chunk, or for a `whole` answer to its
    end."""

    route: Route
    operation: str
    """What was asked: `chat`, or `text_completion` for a raw completion."""
    seconds: float
    error: GatewayError | None
    fallback: bool
    """The route is a fallback's: the requested model had failed."""


class Attempts(Protocol):
    """Who is told of each request to a provider (the metrics, the traces)."""

    def attempted(self, attempt: Attempt) -> None: ...

    def fell_back(self, provider: str) -> None: ...


class Router:
    def __init__(
        self,
        providers: list[Provider],
        settings: ProviderSettings,
        skipped: Mapping[str, str] | None = None,
        attempts: Attempts | None = None,
    ) -> None:
        """`skipped` names the providers that are off, with the reason (and setting) why."""
        self.providers = {p.name: p for p in providers}
        self._attempts = attempts
        self._skipped = dict(skipped or {})
        self.breakers = Breakers(self.providers, settings.breaker_failures, settings.breaker_reset)
        self._settings = settings
        self._models: list[Route] = []
        self._models_at = -1e9
        self._models_lock = asyncio.Lock()
        self._unlisted: set[str] = set()
        """Providers whose last listing failed: logged when they fail and when they are back."""
        self._aliases = settings.model_alias_map
        default = settings.default_provider
        if default and default not in self.providers:
            log.warning("DEFAULT_PROVIDER %s is not an active provider: it is not used", default)

    async def chat_models(self) -> list[Route]:
        """The models that chat: every listed one but those that only embed."""
        return [r for r in await self.models() if not r.provider.embedding_only(r.model)]

    async def models(self) -> list[Route]:
        """Every active provider's models, fetched concurrently and cached briefly."""
        if time.monotonic() - self._models_at < self._settings.models_cache_ttl:
            return self._models
        async with self._models_lock:
            if time.monotonic() - self._models_at < self._settings.models_cache_ttl:
                return self._models
            lists = await asyncio.gather(*(self._list(p) for p in self.providers.values()))
            self._models = [route for routes in lists for route in routes]
            self._models_at = time.monotonic()
            return self._models

    async def _list(self, provider: Provider) -> list[Route]:
        try:
            async with asyncio.timeout(_LIST_TIMEOUT):
                names = await provider.list_models()
        except (GatewayError, TimeoutError) as exc:
            if provider.name not in self._unlisted:
                self._unlisted.add(provider.name)
                reason = str(exc) or f"no answer within {_LIST_TIMEOUT:g}s"
                log.warning("could not list %s models: %s", provider.name, reason)
            return []
        if provider.name in self._unlisted:
            self._unlisted.remove(provider.name)
            log.info("%s answers again: its models are listed", provider.name)
        return [Route(provider, name) for name in names]

    async def resolve(self, model_id: str | None) -> Route:
        """An alias (`MODEL_ALIASES`) is replaced by its target first. `provider/model` goes to
        that provider as is; a bare id is looked up in the merged model list (see `lookup`); an
        empty one means `DEFAULT_MODEL`, else the first model available."""
        model_id = (model_id or "").strip() or self._settings.default_model
        model_id = self._aliases.get(model_id, model_id)
        if not model_id:
            for route in await self.chat_models():
                if not self.breakers.is_open(route.provider.name, route.model):
                    return route
            raise ModelNotFound("no model was given and no provider has one available")
        prefix, sep, rest = model_id.partition("/")
        if sep and rest and prefix in self.providers:
            return Route(self.providers[prefix], rest)
        found = await self._find(model_id)
        if found is not None:
            return found
        raise self.not_found(model_id)

    def not_found(self, model_id: str) -> ModelNotFound:
        """The 404 for a model no active provider has; for `provider/model` of a provider that
        is off, it says which setting turns it on."""
        prefix, sep, rest = model_id.partition("/")
        if sep and rest and prefix in self._skipped:
            return ModelNotFound(
                f"the model '{model_id}' needs provider {prefix}, which is off: "
                f"{self._skipped[prefix]}"
            )
        return ModelNotFound(
            f"the model '{model_id}' does not exist on any active provider; "
            "GET /v1/models lists the available ones"
        )

    async def lookup(self, model_id: str) -> Route | None:
        """The listed model `model_id` names, by the rules of `resolve` (for `/v1/models/{id}`)."""
        return await self._find(self._aliases.get(model_id, model_id))

    async def _find(self, model_id: str) -> Route | None:
        """The listed model whose `provider/model` id or bare name is `model_id`; an untagged
        name also matches Ollama's `name:latest`. A bare name that several providers list goes
        to DEFAULT_PROVIDER when it is one of them, and is otherwise refused, naming them."""
        routes = await self.models()
        for route in routes:
            if route.id == model_id:
                return route
        found = [r for r in routes if r.model in (model_id, f"{model_id}:latest")]
        providers = {r.provider.name for r in found}
        if len(providers) > 1:
            found = [r for r in found if r.provider.name == self._settings.default_provider]
            if not found:
                raise _ambiguous(model_id, providers)
        found.sort(key=lambda r: r.model != model_id)  # `name` before `name:latest`
        return found[0] if found else None

    async def _fallbacks(self, primary: Route, needs: Needs) -> list[Route]:
        model_ids = list(self._settings.fallback_models)
        local = self.providers.get("local")
        if self._settings.local_fallback and local is not None:
            model_ids += [f"local/{name}" for name in await local.list_models()]
        routes: list[Route] = []
        for model_id in model_ids:
            try:
                route = await self.resolve(model_id)
                _check(route, needs)
            except GatewayError as exc:
                log.debug("fallback %s skipped: %s", model_id, exc)
                continue
            if route != primary and route not in routes:
                routes.append(route)
        return routes

    async def open(self, primary: Route, body: dict[str, Any], needs: Needs) -> OpenStream:
        """The first chunk of an answer from the first route that gives one: `primary`,
        retried, then each fallback. The fallbacks are looked up only when needed."""
        _check(primary, needs)
        errors: list[GatewayError] = []
        opened = await self._attempt(primary, body, errors, needs)
        if opened is not None:
            return opened
        for route in await self._fallbacks(primary, needs):
            try:
                opened = await self._attempt(route, body, errors, needs, fallback=True)
            except GatewayError as exc:
                errors.append(exc)
                continue
            if opened is not None:
                log.warning("answered by fallback %s after: %s", route.id, errors[0].message)
                if self._attempts is not None:
                    self._attempts.fell_back(route.provider.name)
                return opened
        raise _summarise(errors)

    async def ask(
        self,
        route: Route,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        within: float,
        temperature: float = 0.0,
    ) -> str:
        """The text of `route`'s short answer to a side question (a summary, a classification,
        follow-ups): no tools, no persona, at most `max_tokens`, within `within` seconds."""
        body = {
            "model": route.id,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        parts: list[str] = []
        try:
            async with asyncio.timeout(within):
                opened = await self.open(route, body, Needs())
                chunk: Chunk | None = opened.first
                try:
                    while chunk is not None:
                        for choice in chunk.get("choices") or ():
                            parts.append((choice.get("delta") or {}).get("content") or "")
                        chunk = await anext(opened.rest, None)
                finally:
                    await opened.rest.aclose()
        except TimeoutError:
            raise UpstreamTimeout(
                route.provider.name, f"no answer to a side question within {within:g}s"
            ) from None
        return "".join(parts).strip()

    async def _attempt(
        self,
        route: Route,
        body: dict[str, Any],
        errors: list[GatewayError],
        needs: Needs,
        fallback: bool = False,
    ) -> OpenStream | None:
        """Try one route up to `RETRY_ATTEMPTS` times; for a `whole` answer, an attempt
        succeeds only once the whole answer has come. Retryable failures are appended to
        `errors` and give None; a failure a retry cannot mend is raised."""
        provider, model = route.provider.name, route.model
        for attempt in range(self._settings.retry_attempts):
            blocked = self.breakers.blocked(provider, model)
            if blocked is not None:
                errors.append(
                    ProviderUnavailable(
                        provider,
                        f"circuit {blocked.circuit} open after repeated failures, "
                        f"next probe in {blocked.retry_in:.0f}s",
                        retry_after=blocked.retry_in,
                    )
                )
                return None
            began = time.perf_counter()
            stream = _start(route, body, needs)
            rest: AsyncGenerator[Chunk, None] = stream
            try:
                first = await anext(stream)
                if needs.whole:
                    rest = _replay(await self._rest(route, stream))
            except StopAsyncIteration:
                error: GatewayError = UpstreamError(route.provider.name, "empty answer")
            except GatewayError as exc:
                error = exc
            except BaseException:
                self.breakers.release(provider, model)
                await stream.aclose()
                raise
            else:
                self.breakers.success(provider, model)
                self._tell(route, needs, began, None, fallback)
                return OpenStream(route, first, rest)
            await stream.aclose()
            self._tell(route, needs, began, error, fallback)
            if not error.retryable:
                self.breakers.release(provider, model)
                raise error
            self.breakers.failure(
                provider, model, unreachable=isinstance(error, ProviderUnreachable)
            )
            errors.append(error)
            log.warning("%s failed (attempt %d): %s", route.id, attempt + 1, error.message)
            delay = self._backoff(attempt, error)
            if delay is None or attempt + 1 == self._settings.retry_attempts:
                return None
            await asyncio.sleep(delay)
        return None

    def _tell(
        self, route: Route, needs: Needs, began: float, error: GatewayError | None, fallback: bool
    ) -> None:
        if self._attempts is not None:
            operation = "text_completion" if needs.completion else "chat"
            seconds = time.perf_counter() - began
            self._attempts.attempted(Attempt(route, operation, seconds, error, fallback))

    async def _rest(self, route: Route, stream: AsyncGenerator[Chunk, None]) -> list[Chunk]:
        """The rest of an answer used only whole. As a streamed answer, it may last TOTAL_TIMEOUT,
        checked at each chunk (REQUEST_TIMEOUT bounds any silence): no timer per request."""
        limit = self._settings.total_timeout
        deadline = time.monotonic() + limit
        chunks: list[Chunk] = []
        async for chunk in stream:
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise AnswerTooLong(route.provider.name, limit)
        return chunks

    def _backoff(self, attempt: int, error: GatewayError) -> float | None:
        """Seconds to wait before retrying the same route; None to move on at once."""
        cap = self._settings.retry_backoff_max
        if isinstance(error, RateLimited) and error.retry_after is not None:
            wait: float = error.retry_after
            return wait if wait <= cap else None
        base = min(cap, self._settings.retry_backoff * 2.0**attempt)
        return base / 2 + random.uniform(0, base / 2)


def _start(route: Route, body: dict[str, Any], needs: Needs) -> AsyncGenerator[Chunk, None]:
    provider, background = route.provider, needs.background
    if needs.completion:
        return provider.stream_completion(route.model, body, background=background)
    return provider.stream_chat(route.model, _fitted(route, body), background=background)


async def _replay(chunks: list[Chunk]) -> AsyncGenerator[Chunk, None]:
    for chunk in chunks:
        yield chunk


def _fitted(route: Route, body: dict[str, Any]) -> dict[str, Any]:
    """`body` without tools for a provider without function calling. Only the gateway's own
    tools can be there (`Needs` keeps requests with the client's away from such providers):
    a fallback without function calling then answers without them."""
    if route.provider.capabilities.tools or "tools" not in body:
        return body
    return {k: v for k, v in body.items() if k not in _TOOL_FIELDS}


_TOOL_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})


def _check(route: Route, needs: Needs) -> None:
    """That `route` can give the chat answer asked for."""
    if route.provider.embedding_only(route.model):
        raise InvalidRequest(
            f"the model '{route.id}' is an embedding model: it has no chat completions "
            "(use it on /v1/embeddings)",
            param="model",
        )
    caps = route.provider.capabilities
    if needs.tools and not caps.tools:
        raise InvalidRequest(
            f"the model '{route.id}' does not support function calling", param="tools"
        )
    if needs.custom_tools and not caps.custom_tools:
        raise InvalidRequest(
            f"the model '{route.id}' cannot take custom tools (tools[].type 'custom'): "
            f"{route.provider.name} takes function tools only",
            param="tools",
        )
    if needs.choices > 1 and not caps.multiple_choices:
        raise InvalidRequest(
            f"the model '{route.id}' cannot return more than one choice", param="n"
        )


def _ambiguous(model_id: str, providers: set[str]) -> AmbiguousModel:
    names = sorted(providers)
    return AmbiguousModel(
        f"the model '{model_id}' is offered by {' and '.join(names)}: name one as "
        + " or ".join(f"'{name}/{model_id}'" for name in names)
        + ", or set DEFAULT_PROVIDER or MODEL_ALIASES"
    )


def _summarise(errors: list[GatewayError]) -> GatewayError:
    """The first error, its message extended by what the fallbacks said; all rate limits stay
    a 429 with the shortest Retry-After."""
    first = errors[0]
    if all(isinstance(e, RateLimited) for e in errors):
        waits = [e.retry_after for e in errors if isinstance(e, RateLimited) and e.retry_after]
        return RateLimited(first.message, retry_after=min(waits) if waits else None)
    others = [e.message for e in errors[1:] if e.message != first.message]
    if others:
        first.message += "; then " + "; then ".join(others)
    return first
