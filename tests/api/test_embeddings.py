"""POST /v1/embeddings through the fake OpenAI upstream and through the fake Ollama."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from app.main import create_app
from tests.conftest import gateway_settings
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import serve

# (model id, the fake's default dimension count)
OPENAI_EMBED = ("openai/embed-test", 8)
OLLAMA_EMBED = ("ollama/nomic-embed-text", 4)
BOTH = pytest.mark.parametrize(
    ("model", "dims"), [OPENAI_EMBED, OLLAMA_EMBED], ids=["openai", "ollama"]
)


@pytest.fixture(scope="module")
def served(openai_server: tuple[str, OpenAIUpstreamState]) -> Iterator[tuple[str, FakeOllama]]:
    """One gateway for the module (embeddings leave no state behind), in front of the fake
    OpenAI upstream and a FakeOllama; yields the gateway's URL and the fake."""
    upstream_url, _ = openai_server
    fake = FakeOllama()
    with serve(fake.app) as ollama_url:
        settings = gateway_settings(
            ollama_base_url=ollama_url,
            openai_base_url=f"{upstream_url}/v1",
            openai_api_key="upstream-key",
        )
        with serve(create_app(settings)) as url:
            yield url, fake


@pytest.fixture
def url(served: tuple[str, FakeOllama]) -> str:
    return served[0]


@pytest.fixture
def fake(served: tuple[str, FakeOllama]) -> FakeOllama:
    return served[1]


@pytest.fixture
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def embed(url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json=body, timeout=20)


def floats(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@BOTH
def test_float_encoding(url: str, model: str, dims: int) -> None:
    request = {"model": model, "input": "hello world", "encoding_format": "float"}
    for path in ("/v1/embeddings", "/embeddings"):
        resp = httpx.post(f"{url}{path}", json=request)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["object"] == "list"
        assert body["model"] == model
        [item] = body["data"]
        assert item["object"] == "embedding"
        assert item["index"] == 0
        assert len(item["embedding"]) == dims
        assert all(isinstance(x, float) for x in item["embedding"])


@BOTH
def test_base64_encoding_is_little_endian_float32(url: str, model: str, dims: int) -> None:
    as_float = embed(url, model=model, input="hello world").json()["data"][0]["embedding"]
    resp = embed(url, model=model, input="hello world", encoding_format="base64")
    assert resp.status_code == 200, resp.text
    encoded = resp.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    assert len(base64.b64decode(encoded)) == 4 * dims
    assert floats(encoded) == pytest.approx(as_float, rel=1e-6, abs=1e-7)


@BOTH
def test_sdk_default_base64_decodes_to_the_float_result(
    url: str, sdk: openai.OpenAI, model: str, dims: int
) -> None:
    inputs = ["first text", "second, longer text"]
    raw = sdk.embeddings.with_raw_response.create(model=model, input=inputs)
    wire = raw.http_response.json()
    assert all(isinstance(item["embedding"], str) for item in wire["data"]), "SDK asks base64"
    result = raw.parse()
    as_float = embed(url, model=model, input=inputs, encoding_format="float").json()
    assert [item.index for item in result.data] == [0, 1]
    for item, expected in zip(result.data, as_float["data"], strict=True):
        assert len(item.embedding) == dims
        assert item.embedding == pytest.approx(expected["embedding"], rel=1e-6, abs=1e-7)
    assert result.model == model


@BOTH
def test_a_list_of_inputs_keeps_order_and_indexes(url: str, model: str, dims: int) -> None:
    inputs = ["a", "bb bb", "ccc ccc ccc", "dddd", "e"]
    body = embed(url, model=model, input=inputs).json()
    assert [item["index"] for item in body["data"]] == list(range(len(inputs)))
    one_by_one = [embed(url, model=model, input=text).json()["data"][0] for text in inputs]
    assert [item["embedding"] for item in body["data"]] == [
        item["embedding"] for item in one_by_one
    ]
    # Different inputs give different vectors (so the order check above means something).
    assert len({tuple(item["embedding"]) for item in body["data"]}) >= 3


def test_dimensions_and_token_ids_are_forwarded_to_openai(
    url: str, upstream: OpenAIUpstreamState
) -> None:
    resp = embed(url, model="openai/embed-test", input=["x y", "z"], dimensions=5)
    assert resp.status_code == 200, resp.text
    assert [len(item["embedding"]) for item in resp.json()["data"]] == [5, 5]
    sent = upstream.requests[-1]
    assert sent["model"] == "embed-test"
    assert sent["dimensions"] == 5
    assert sent["input"] == ["x y", "z"]
    resp = embed(url, model="openai/embed-test", input=[1, 2, 3])
    assert resp.status_code == 200, resp.text
    assert upstream.requests[-1]["input"] == [[1, 2, 3]]


def test_dimensions_are_forwarded_to_ollama(url: str, fake: FakeOllama) -> None:
    resp = embed(url, model=OLLAMA_EMBED[0], input="x", dimensions=3)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"][0]["embedding"]) == 3
    assert fake.embed_requests[-1] == {"model": "nomic-embed-text", "input": ["x"], "dimensions": 3}


@BOTH
def test_usage_is_present(url: str, model: str, dims: int) -> None:
    usage = embed(url, model=model, input=["one two", "three"]).json()["usage"]
    assert usage == {"prompt_tokens": 3, "total_tokens": 3}


def test_sdk_float_and_bare_model_id(sdk: openai.OpenAI) -> None:
    result = sdk.embeddings.create(model="embed-test", input="hello", encoding_format="float")
    assert result.model == "openai/embed-test"
    assert len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 1


@pytest.mark.parametrize("body", [{"input": "x"}, {"model": "", "input": "x"}])
def test_missing_model_is_400_param_model(url: str, body: dict[str, Any]) -> None:
    resp = httpx.post(f"{url}/v1/embeddings", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"
    assert "model" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "openai/embed-test", "input": []},
        {"model": "openai/embed-test"},
        {"model": "openai/embed-test", "input": "x", "encoding_format": "binary"},
        {"model": "openai/embed-test", "input": "x", "dimensions": 0},
    ],
    ids=["empty-list", "no-input", "bad-encoding", "zero-dimensions"],
)
def test_bad_requests_are_400(url: str, body: dict[str, Any]) -> None:
    resp = httpx.post(f"{url}/v1/embeddings", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] in {"input", "encoding_format", "dimensions"}


@BOTH
def test_empty_string_input_is_400(url: str, model: str, dims: int) -> None:
    empties: tuple[str, list[str], list[list[int]]] = ("", ["a", ""], [[]])  # text, texts, ids
    for empty in empties:
        resp = embed(url, model=model, input=empty)
        assert resp.status_code == 400
        assert resp.json()["error"]["param"] == "input"


def test_token_ids_to_ollama_are_400(url: str) -> None:
    resp = embed(url, model=OLLAMA_EMBED[0], input=[[1, 2, 3]])
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "input"


@pytest.mark.parametrize("model", ["no-such-model", "openai/no-such-model"])
def test_unknown_model_is_404(url: str, sdk: openai.OpenAI, model: str) -> None:
    resp = embed(url, model=model, input="x")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model=model, input="x")


def test_unknown_ollama_model_is_404_after_a_failed_pull(url: str, fake: FakeOllama) -> None:
    resp = embed(url, model="ollama/not-on-the-registry", input="x")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "model_not_found"
    assert fake.pulls["not-on-the-registry:latest"] == 1


# No embeddings-less provider here: `local` is disabled in tests and ollama, openai and llamacpp
# all advertise embeddings, so the "model has no embeddings" 400 cannot be reached over HTTP.
