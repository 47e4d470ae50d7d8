"""The router's choices, with scripted providers standing in for upstreams, and what a client
sees of them through a real gateway on the fake upstreams."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest

from app.config import ConfigError
from app.errors import (
    AmbiguousModel,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoCompletions,
    RateLimited,
    UpstreamError,
    UpstreamRateLimited,
)
from app.providers.base import Capabilities, Chunk, Embeddings
from app.providers.router import Needs, OpenStream, Router
from tests.conftest import MakeGateway, gateway_settings
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.serve import free_port, serve

ANSWER: Chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}


class Scripted:
    """Answers or fails as scripted, per model; records what it was asked."""

    def __init__(
        self, name: str, script: dict[str, list[GatewayError | None]], **caps: bool
    ) -> None:
        self.name = name
        self.capabilities = Capabilities(**caps)
        self.script = script
        self.calls: list[str] = []
        self.without_completions: set[str] = set()

    async def list_models(self) -> list[str]:
        return list(self.script)

    def embedding_only(self, model: str) -> bool:
        return model.startswith("embed")

    def stream_chat(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        return self._play(model, model)

    def stream_completion(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        return self._play(model, f"{model} completion")

    async def _play(self, model: str, call: str) -> AsyncGenerator[Chunk, None]:
        if call.endswith("completion") and model in self.without_completions:
            raise NoCompletions(f"{self.name}: no /completions")
        self.calls.append(call)
        outcomes = self.script[model]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if outcome is not None:
            raise outcome
        yield ANSWER

    async def embed(
        self, model: str, inputs: list[str] | list[list[int]], dimensions: int | None
    ) -> Embeddings:
        raise NotImplementedError

    async def health(self) -> str:
        return "scripted"

    async def aclose(self) -> None:
        return None


async def open_stream(r: Router, model_id: str, body: dict[str, Any], needs: Needs) -> OpenStream:
    """The router's stream of `model_id`, resolved first as the engine does."""
    return await r.open(await r.resolve(model_id), body, needs)


def router(*providers: Scripted, **settings: Any) -> Router:
    return Router(list(providers), gateway_settings(**settings).providers)


async def test_retries_then_falls_back_in_order() -> None:
    a = Scripted("a", {"m": [UpstreamError("a", "boom")]})
    b = Scripted("b", {"m": [UpstreamError("b", "boom")], "n": [None]})
    r = router(a, b, retry_attempts=2, fallback_models=["b/m", "b/n"])
    opened = await open_stream(r, "a/m", {}, Needs())
    assert opened.route.id == "b/n"
    assert a.calls == ["m", "m"]
    assert b.calls == ["m", "m", "n"]


async def test_a_client_error_on_the_requested_model_is_not_retried() -> None:
    a = Scripted("a", {"m": [InvalidRequest("bad")]})
    b = Scripted("b", {"n": [None]})
    with pytest.raises(InvalidRequest):
        await open_stream(router(a, b, fallback_models=["b/n"]), "a/m", {}, Needs())
    assert a.calls == ["m"]
    assert b.calls == []


async def test_fallbacks_that_cannot_serve_the_request_are_skipped() -> None:
    a = Scripted("a", {"m": [UpstreamError("a", "down")]})
    plain = Scripted("plain", {"p": [None]}, tools=False)
    tooled = Scripted("tooled", {"t": [None]})
    r = router(a, plain, tooled, retry_attempts=1, fallback_models=["plain/p", "tooled/t"])
    opened = await open_stream(r, "a/m", {}, Needs(tools=True))
    assert opened.route.id == "tooled/t"
    assert plain.calls == []
    with pytest.raises(InvalidRequest) as info:
        await open_stream(r, "plain/p", {}, Needs(tools=True))
    assert info.value.param == "tools"


async def test_only_rate_limits_give_a_429_with_the_shortest_wait() -> None:
    a = Scripted("a", {"m": [UpstreamRateLimited("a", "slow down", retry_after=30)]})
    b = Scripted("b", {"n": [UpstreamRateLimited("b", "slow down", retry_after=12)]})
    r = router(a, b, retry_attempts=1, fallback_models=["b/n"])
    with pytest.raises(RateLimited) as info:
        await open_stream(r, "a/m", {}, Needs())
    assert info.value.retry_after == 12
    assert info.value.headers() == {"Retry-After": "12"}


async def test_the_first_failure_is_reported_with_what_the_fallbacks_said() -> None:
    a = Scripted("a", {"m": [UpstreamError("a", "exploded")]})
    b = Scripted("b", {"n": [ModelNotFound("b: no such model")]})
    r = router(a, b, retry_attempts=1, fallback_models=["b/n"])
    with pytest.raises(UpstreamError) as info:
        await open_stream(r, "a/m", {}, Needs())
    assert info.value.status == 502
    assert info.value.message == "a: exploded; then b: no such model"


def test_backoff_doubles_within_its_bounds_with_jitter() -> None:
    r = router(retry_backoff=0.2, retry_backoff_max=1.0)
    error = UpstreamError("a", "boom")
    for attempt, base in ((0, 0.2), (1, 0.4), (2, 0.8), (5, 1.0)):
        delays = {r._backoff(attempt, error) for _ in range(50)}
        assert all(d is not None and base / 2 <= d <= base for d in delays)
        assert len(delays) > 1
    assert r._backoff(0, UpstreamRateLimited("a", "x", retry_after=0.5)) == 0.5
    assert r._backoff(0, UpstreamRateLimited("a", "x", retry_after=30)) is None


async def test_resolution_of_bare_prefixed_and_empty_ids() -> None:
    a = Scripted("a", {"llama3.2:latest": [None], "org/model": [None]})
    b = Scripted("b", {"x": [None]})
    r = router(a, b)
    assert (await r.resolve("llama3.2")).id == "a/llama3.2:latest"
    assert (await r.resolve("org/model")).id == "a/org/model"
    assert (await r.resolve("b/anything")).id == "b/anything"
    assert (await r.resolve("")).id == "a/llama3.2:latest"
    assert (await router(a, b, default_model="b/x").resolve(None)).id == "b/x"
    with pytest.raises(ModelNotFound):
        await r.resolve("missing")


async def test_a_bare_id_several_providers_list_needs_a_rule() -> None:
    a = Scripted("a", {"shared": [None], "mine": [None]})
    b = Scripted("b", {"shared:latest": [None]})
    with pytest.raises(AmbiguousModel, match="'a/shared' or 'b/shared'"):
        await router(a, b).resolve("shared")
    assert (await router(a, b).resolve("mine")).id == "a/mine"
    assert (await router(a, b, default_provider="b").resolve("shared")).id == "b/shared:latest"
    aliased = router(a, b, model_aliases=["fast=b/shared:latest", "shared=a/shared"])
    assert (await aliased.resolve("fast")).id == "b/shared:latest"
    assert (await aliased.resolve("shared")).id == "a/shared"
    assert (await aliased.lookup("fast")) == await aliased.resolve("fast")


def test_a_malformed_alias_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="not alias=provider/model"):
        gateway_settings(model_aliases="fast")


async def test_a_fallback_without_function_calling_gets_no_tools() -> None:
    seen: list[dict[str, Any]] = []

    class Recording(Scripted):
        async def stream_chat(
            self, model: str, body: dict[str, Any], *, background: bool = False
        ) -> AsyncGenerator[Chunk, None]:
            seen.append(body)
            async for chunk in super().stream_chat(model, body):
                yield chunk

    a = Recording("a", {"m": [UpstreamError("a", "down")]})
    b = Recording("b", {"n": [None]}, tools=False)
    body = {"messages": [], "tools": [{"type": "function"}], "tool_choice": "auto"}
    opened = await open_stream(router(a, b, fallback_models=["b/n"]), "a/m", body, Needs())
    assert opened.route.id == "b/n"
    assert "tools" in seen[0]
    assert seen[-1] == {"messages": []}


async def test_a_completion_is_opened_through_the_same_retries_and_fallbacks() -> None:
    a = Scripted("a", {"m": [UpstreamError("a", "boom")]})
    b = Scripted("b", {"n": [UpstreamError("b", "boom"), None], "o": [None]})
    b.without_completions.add("o")
    r = router(a, b, retry_attempts=2, fallback_models=["b/o", "b/n"])
    opened = await open_stream(r, "a/m", {"prompt": "x"}, Needs(completion=True))
    assert opened.route.id == "b/n"
    assert a.calls == ["m completion", "m completion"]
    assert b.calls == ["n completion", "n completion"]  # b/o has no completions: skipped


async def test_a_provider_without_completions_says_so_at_once() -> None:
    a = Scripted("a", {"m": [None]})
    a.without_completions.add("m")
    b = Scripted("b", {"n": [None]})
    r = router(a, b, retry_attempts=3, fallback_models=["b/n"])
    with pytest.raises(NoCompletions):
        await open_stream(r, "a/m", {"prompt": "x"}, Needs(completion=True))
    assert b.calls == []
    assert not r.breakers.is_open("a", "m")


# --- through a real gateway ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "setting"),
    [
        ("openai/gpt-4o-mini", "neither OPENAI_API_KEY nor OPENAI_BASE_URL is set"),
        ("ollama/llama3.2", "OLLAMA_BASE_URL is empty"),
        ("llamacpp/qwen", "LLAMACPP_BASE_URL is empty"),
        ("local/gemma-3-270m", "LOCAL_ENABLED is off"),
    ],
)
def test_a_model_of_a_provider_that_is_off_is_404_naming_the_setting(
    make_gateway: MakeGateway, model: str, setting: str
) -> None:
    url = make_gateway(openai_base_url="", openai_api_key="")
    provider = model.partition("/")[0]
    requests = [
        (
            "POST",
            "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("POST", "/v1/embeddings", {"model": model, "input": "x"}),
        ("POST", "/chat", {"user_id": "u", "message": "hi", "model": model}),
        ("GET", f"/v1/models/{model}", None),
    ]
    for method, path, body in requests:
        resp = httpx.request(method, f"{url}{path}", json=body)
        assert resp.status_code == 404, (path, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "model_not_found"
        assert error["param"] == "model"
        assert error["message"].startswith(
            f"the model '{model}' needs provider {provider}, which is off: {setting}"
        ), error["message"]


def test_a_provider_that_cannot_list_its_models_is_logged_once_per_change(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Every refresh of the model list asks again; the log says so when the provider goes
    away, and when it is back, not on every refresh."""
    caplog.set_level(logging.INFO, logger="app.providers.router")
    port = free_port()
    url = make_gateway(ollama_base_url=f"http://127.0.0.1:{port}", models_cache_ttl=0)

    def refresh(times: int) -> list[str]:
        caplog.clear()
        for _ in range(times):
            assert httpx.get(f"{url}/v1/models", timeout=20).status_code == 200
        return [r.getMessage() for r in caplog.records if r.name == "app.providers.router"]

    down = refresh(3)
    assert len(down) == 1
    assert down[0].startswith("could not list ollama models: ollama: cannot connect")
    with serve(FakeOllama().app, port=port):
        assert refresh(3) == ["ollama answers again: its models are listed"]
    assert len(refresh(3)) == 1
