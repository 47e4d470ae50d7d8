"""GET /v1/models and /v1/models/{id}: the merged list of every active provider's chat models
(embedding models are left out of it, yet usable on /v1/embeddings and refused for chat)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MakeGateway
from tests.fakes.ollama_upstream import EMBEDDING_MODELS, FakeOllama, base_name
from tests.fakes.openai_upstream import MODELS, OpenAIUpstreamState
from tests.fakes.serve import serve

DOWN = "http://127.0.0.1:9"
NO_OPENAI = {"openai_base_url": "", "openai_api_key": ""}
CHAT_MODELS = [m for m in MODELS if m != "embed-test"]
USER = [{"role": "user", "content": "hi"}]


def ollama_chat_models(fake: FakeOllama) -> set[str]:
    return {name for name in fake.installed if base_name(name) not in EMBEDDING_MODELS}


@pytest.fixture
def three_providers(
    make_gateway: MakeGateway,
    openai_server: tuple[str, OpenAIUpstreamState],
    ollama_server: tuple[str, FakeOllama],
) -> tuple[str, FakeOllama]:
    """A gateway with `ollama` (FakeOllama), `openai` and `llamacpp` (both the fake upstream)."""
    upstream_url, _ = openai_server
    ollama_url, fake = ollama_server
    return make_gateway(ollama_base_url=ollama_url, llamacpp_base_url=upstream_url), fake


def ids(body: dict[str, Any]) -> list[str]:
    """The providers' models listed (the pipelines, listed after them, are tested apart)."""
    return [entry["id"] for entry in body["data"] if not entry["id"].startswith("pipeline/")]


def test_list_merges_every_active_provider(three_providers: tuple[str, FakeOllama]) -> None:
    url, fake = three_providers
    for path in ("/v1/models", "/models"):
        resp = httpx.get(f"{url}{path}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["object"] == "list"
        expected = {
            *(f"ollama/{name}" for name in ollama_chat_models(fake)),
            *(f"openai/{name}" for name in CHAT_MODELS),
            *(f"llamacpp/{name}" for name in CHAT_MODELS),
        }
        assert sorted(ids(body)) == sorted(expected)
        for entry in body["data"]:
            provider, _, model = entry["id"].partition("/")
            assert model
            assert entry["object"] == "model"
            assert entry["owned_by"] == provider
            assert isinstance(entry["created"], int)


def test_ollama_models_keep_their_tag(three_providers: tuple[str, FakeOllama]) -> None:
    url, _ = three_providers
    listed = ids(httpx.get(f"{url}/v1/models").json())
    assert "ollama/llama3.2:latest" in listed
    assert "ollama/llama3.2" not in listed


def test_retrieve_an_id_with_a_slash_and_a_tag(three_providers: tuple[str, FakeOllama]) -> None:
    url, _ = three_providers
    for path in ("/v1/models", "/models"):
        resp = httpx.get(f"{url}{path}/ollama/llama3.2:latest")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "id": "ollama/llama3.2:latest",
            "object": "model",
            "created": resp.json()["created"],
            "owned_by": "ollama",
        }
    # The slash may also arrive percent-encoded (the openai SDK sends it so).
    resp = httpx.get(f"{url}/v1/models/ollama%2Fllama3.2:latest")
    assert resp.status_code == 200
    assert resp.json()["id"] == "ollama/llama3.2:latest"


def test_retrieve_a_bare_id(three_providers: tuple[str, FakeOllama]) -> None:
    url, _ = three_providers
    resp = httpx.get(f"{url}/v1/models/llama3.2:latest")
    assert resp.status_code == 200
    assert resp.json()["id"] == "ollama/llama3.2:latest"


def test_a_bare_id_two_providers_list_is_refused_naming_them(
    three_providers: tuple[str, FakeOllama],
) -> None:
    url, _ = three_providers
    message = (
        "the model 'gpt-test' is offered by llamacpp and openai: name one as "
        "'llamacpp/gpt-test' or 'openai/gpt-test', or set DEFAULT_PROVIDER or MODEL_ALIASES"
    )
    retrieved = httpx.get(f"{url}/v1/models/gpt-test")
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
    )
    for resp in (retrieved, chat):
        assert resp.status_code == 400
        assert resp.json()["error"] == {
            "message": message,
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_ambiguous",
        }


@pytest.mark.parametrize(
    "rule",
    [{"default_provider": "llamacpp"}, {"model_aliases": ["gpt-test=llamacpp/gpt-test"]}],
    ids=["DEFAULT_PROVIDER", "MODEL_ALIASES"],
)
def test_a_rule_decides_which_provider_a_shared_bare_id_goes_to(
    make_gateway: MakeGateway,
    openai_server: tuple[str, OpenAIUpstreamState],
    ollama_server: tuple[str, FakeOllama],
    rule: dict[str, Any],
) -> None:
    upstream_url, _ = openai_server
    ollama_url, _ = ollama_server
    url = make_gateway(ollama_base_url=ollama_url, llamacpp_base_url=upstream_url, **rule)
    assert httpx.get(f"{url}/v1/models/gpt-test").json()["id"] == "llamacpp/gpt-test"
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["model"] == "llamacpp/gpt-test"
    # a name only one provider lists is not affected
    assert httpx.get(f"{url}/v1/models/llama3.2").json()["id"] == "ollama/llama3.2:latest"


def test_retrieve_an_untagged_ollama_name_as_chat_resolves_it(
    three_providers: tuple[str, FakeOllama],
) -> None:
    url, _ = three_providers
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200
    assert chat.json()["model"] == "ollama/llama3.2:latest"
    resp = httpx.get(f"{url}/v1/models/llama3.2")
    assert resp.status_code == 200
    assert resp.json()["id"] == "ollama/llama3.2:latest"


@pytest.mark.parametrize(
    "model_id", ["no-such-model", "openai/no-such-model", "ollama/no-such-model"]
)
def test_unknown_model_is_404_in_openai_shape(
    three_providers: tuple[str, FakeOllama], model_id: str
) -> None:
    url, _ = three_providers
    resp = httpx.get(f"{url}/v1/models/{model_id}")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "model_not_found"
    assert error["type"] == "invalid_request_error"
    assert model_id in error["message"]


def test_a_provider_that_is_down_is_left_out(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    ollama_url, fake = ollama_server
    url = make_gateway(ollama_base_url=ollama_url, llamacpp_base_url=DOWN)
    resp = httpx.get(f"{url}/v1/models", timeout=20)
    assert resp.status_code == 200
    listed = ids(resp.json())
    providers = {model_id.split("/", 1)[0] for model_id in listed}
    assert providers == {"ollama", "openai"}
    assert len(listed) == len(ollama_chat_models(fake)) + len(CHAT_MODELS)


def test_no_provider_reachable_gives_an_empty_list(make_gateway: MakeGateway) -> None:
    url = make_gateway(openai_base_url=f"{DOWN}/v1", llamacpp_base_url=DOWN)
    resp = httpx.get(f"{url}/v1/models", timeout=20)
    assert resp.status_code == 200
    assert resp.json() == {"object": "list", "data": []}


@pytest.mark.parametrize(("ttl", "cached"), [(None, True), (0, False)])
def test_the_list_is_cached_for_models_cache_ttl(
    make_gateway: MakeGateway, ttl: float | None, cached: bool
) -> None:
    """A dedicated upstream, stopped after the first listing: within MODELS_CACHE_TTL (default
    10 s) its models are still listed; with a TTL of 0 they are gone at once."""
    fake = FakeOllama(installed=("only-here",))
    overrides: dict[str, Any] = dict(NO_OPENAI)
    if ttl is not None:
        overrides["models_cache_ttl"] = ttl
    with serve(fake.app) as ollama_url:
        url = make_gateway(ollama_base_url=ollama_url, **overrides)
        assert ids(httpx.get(f"{url}/v1/models").json()) == ["ollama/only-here:latest"]
    second = httpx.get(f"{url}/v1/models", timeout=20)
    assert second.status_code == 200
    assert ids(second.json()) == (["ollama/only-here:latest"] if cached else [])


def test_embedding_models_are_not_offered_for_chat(
    three_providers: tuple[str, FakeOllama],
) -> None:
    """Named as embedding models (OpenAI-compatible lists) or said to be by Ollama: left out of
    the list, still retrievable and usable for embeddings, a 400 naming the model for chat."""
    url, fake = three_providers
    listed = ids(httpx.get(f"{url}/v1/models").json())
    embedding = ["openai/embed-test", "llamacpp/embed-test", "ollama/nomic-embed-text:latest"]
    embedding.append("ollama/embedder:latest")
    assert not set(embedding) & set(listed)
    for model_id in embedding:
        assert httpx.get(f"{url}/v1/models/{model_id}").json()["id"] == model_id
        resp = httpx.post(f"{url}/v1/embeddings", json={"model": model_id, "input": "hi"})
        assert resp.status_code == 200, resp.text
        for stream in (False, True):
            body = {"model": model_id, "messages": USER, "stream": stream}
            resp = httpx.post(f"{url}/v1/chat/completions", json=body)
            assert resp.status_code == 400, resp.text
            assert resp.json()["error"] == {
                "message": f"the model '{model_id}' is an embedding model: it has no chat "
                "completions (use it on /v1/embeddings)",
                "type": "invalid_request_error",
                "param": "model",
                "code": "invalid_request",
            }
    for bare in ("embed-test", "nomic-embed-text", "embedder"):
        resp = httpx.post(f"{url}/v1/chat/completions", json={"model": bare, "messages": USER})
        assert resp.status_code == 400
        assert resp.json()["error"]["param"] == "model"
    assert fake.chat_requests == []


@pytest.mark.parametrize(
    ("capabilities", "listed"),
    [
        (True, ["ollama/embed-like-chat:latest", "ollama/llama3.2:latest"]),
        (False, ["ollama/llama3.2:latest"]),
    ],
)
def test_ollamas_capabilities_decide_else_its_families_and_names(
    make_gateway: MakeGateway, capabilities: bool, listed: list[str]
) -> None:
    """`/api/show` says what a model does, asked once per model version; an older Ollama that
    does not say is read by the BERT family of `/api/tags` (embedder) and by name."""
    fake = FakeOllama(
        installed=("llama3.2", "embedder", "embed-like-chat"), capabilities=capabilities
    )
    with serve(fake.app) as ollama_url:
        url = make_gateway(ollama_base_url=ollama_url, models_cache_ttl=0, **NO_OPENAI)
        for _ in range(3):
            assert sorted(ids(httpx.get(f"{url}/v1/models").json())) == listed
        assert set(fake.show_requests.values()) == {1}
        assert len(fake.show_requests) == 3


def test_a_slow_api_show_does_not_lose_the_list(make_gateway: MakeGateway) -> None:
    """Capabilities that do not come in time are asked for again at the next listing; this one
    goes by family and name."""
    fake = FakeOllama(installed=("llama3.2", "embedder", "embed-like-chat"), show_delay=3)
    with serve(fake.app) as ollama_url:
        url = make_gateway(ollama_base_url=ollama_url, models_cache_ttl=0, **NO_OPENAI)
        resp = httpx.get(f"{url}/v1/models", timeout=20)
        assert ids(resp.json()) == ["ollama/llama3.2:latest"]
        assert resp.elapsed.total_seconds() < 3
        fake.show_delay = 0
        listed = sorted(ids(httpx.get(f"{url}/v1/models").json()))
        assert listed == ["ollama/embed-like-chat:latest", "ollama/llama3.2:latest"]
        assert set(fake.show_requests.values()) == {2}


def test_no_model_means_the_first_that_chats(make_gateway: MakeGateway) -> None:
    fake = FakeOllama(installed=("embedder", "llama3.2"))
    with serve(fake.app) as ollama_url:
        url = make_gateway(ollama_base_url=ollama_url, **NO_OPENAI)
        resp = httpx.post(f"{url}/v1/chat/completions", json={"messages": USER})
        assert resp.status_code == 200, resp.text
        assert resp.json()["model"] == "ollama/llama3.2:latest"


def test_sdk_models_list_and_retrieve(three_providers: tuple[str, FakeOllama]) -> None:
    url, fake = three_providers
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as sdk:
        check_sdk_models(sdk, fake)


def check_sdk_models(sdk: openai.OpenAI, fake: FakeOllama) -> None:
    page = sdk.models.list()
    listed = [model.id for model in page if not model.id.startswith("pipeline/")]
    assert "ollama/llama3.2:latest" in listed
    assert "openai/gpt-test" in listed
    assert "llamacpp/gpt-test" in listed
    assert len(listed) == len(ollama_chat_models(fake)) + 2 * len(CHAT_MODELS)
    assert all(model.object == "model" for model in page)

    model = sdk.models.retrieve("ollama/llama3.2:latest")
    assert model.id == "ollama/llama3.2:latest"
    assert model.owned_by == "ollama"
    assert sdk.models.retrieve("llamacpp/tool-model").owned_by == "llamacpp"
    with pytest.raises(openai.NotFoundError) as info:
        sdk.models.retrieve("ollama/not-installed:7b")
    assert info.value.code == "model_not_found"
