"""The store's two modes (embedded Chroma, a real `chroma run` server), the model stamped on
each collection, the embedded store's one-process lock, reindexing, and the local model served
on /v1/embeddings."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import chromadb
import httpx
import openai
import pytest

from app.config import load_settings
from app.knowledge.reindex import reindex
from app.knowledge.service import DOCUMENTS
from app.knowledge.vectors import open_client
from app.main import create_app
from tests.conftest import MakeGateway, gateway_settings
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import free_port, serve
from tests.knowledge.files import BOILER


@contextmanager
def running_chroma(path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A real Chroma server on loopback storing in `path`; stopped on exit."""
    binary = shutil.which("chroma")
    assert binary, "chromadb's `chroma` command is not on PATH"
    port = free_port()
    process = subprocess.Popen(
        [binary, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Chroma server did not start")
            time.sleep(0.2)
        yield port, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_chroma(tmp_path_factory.mktemp("chroma")) as (port, _):
        yield port


def test_a_chroma_server_holds_the_vectors(make_gateway: MakeGateway, chroma_server: int) -> None:
    url = make_gateway(chroma_host="127.0.0.1", chroma_port=chroma_server)
    health = httpx.get(f"{url}/health").json()
    assert health["chromadb"]["status"] == "healthy"
    assert health["chromadb"]["details"].startswith("127.0.0.1")
    created = httpx.post(f"{url}/v1/documents", files={"file": ("boiler.md", BOILER)}, timeout=60)
    assert created.status_code == 201
    found = httpx.post(f"{url}/api/v1/rag/search", json={"query": "warranty duration"}).json()
    assert "seven years" in found["data"][0]["text"]
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server)
    (name,) = [c.name for c in client.list_collections() if c.name.startswith(DOCUMENTS)]
    collection = client.get_collection(name)
    assert collection.count() == created.json()["chunks"]
    assert collection.metadata["embedding_model"] == "all-MiniLM-L6-v2"
    assert collection.metadata["dimension"] == 384
    deleted = httpx.delete(f"{url}/v1/documents/{created.json()['id']}")
    assert deleted.status_code == 200
    assert collection.count() == 0


def test_a_chroma_server_that_goes_away_leaves_chat_answering(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, tmp_path: Path
) -> None:
    with running_chroma(tmp_path) as (port, process):
        url = make_gateway(chroma_host="127.0.0.1", chroma_port=port)
        upload = httpx.post(f"{url}/v1/documents", files={"file": ("b.md", BOILER)}, timeout=60)
        assert upload.status_code == 201
        process.kill()
        process.wait(10)
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "openai/gpt-test",
                "messages": [{"role": "user", "content": "How long is the warranty?"}],
            },
            timeout=60,
        )
        assert chat.status_code == 200, chat.text
        assert "Passages" not in str(upstream.requests[-1]["messages"])
        again = httpx.post(f"{url}/v1/documents", files={"file": ("c.md", "# C\n\nText.")})
        assert again.status_code == 503
        time.sleep(2.1)  # health's probes are cached for 2 s
        report = httpx.get(f"{url}/health").json()
        assert report["chromadb"]["status"] == "unhealthy"
        assert report["status"] == "degraded"


def test_an_unreachable_chroma_server_leaves_chat_working(make_gateway: MakeGateway) -> None:
    url = make_gateway(chroma_host="127.0.0.1", chroma_port=free_port())
    health = httpx.get(f"{url}/health").json()
    assert health["chromadb"]["status"] == "unhealthy"
    assert health["status"] == "degraded"
    upload = httpx.post(f"{url}/v1/documents", files={"file": ("boiler.md", BOILER)})
    assert upload.status_code == 503
    assert upload.json()["error"]["code"] == "knowledge_unavailable"
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200


def test_vectors_of_another_model_are_refused_until_reindexed(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    client = open_client("", 0, tmp_path)  # the gateway's settings: one client per path
    client.create_collection(
        f"{DOCUMENTS}-someone",
        metadata={"hnsw:space": "cosine", "embedding_model": "old-model", "dimension": 768},
        embedding_function=None,
    )
    del client
    url = make_gateway(data_dir=tmp_path)
    upload = httpx.post(f"{url}/v1/documents", files={"file": ("boiler.md", BOILER)})
    assert upload.status_code == 503
    error = upload.json()["error"]
    assert error["code"] == "knowledge_unavailable"
    assert "old-model (768 dimensions)" in error["message"]
    assert "python -m app reindex" in error["message"]
    assert httpx.get(f"{url}/health").json()["status"] == "degraded"


def test_reindex_waits_for_the_gateway_to_stop(make_gateway: MakeGateway, tmp_path: Path) -> None:
    make_gateway(data_dir=tmp_path)
    # the gateway is up: its lock on the embedded store keeps reindex out
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    with pytest.raises(Exception, match="another process"):
        asyncio.run(reindex(settings.knowledge, tmp_path, lambda _: None))


def test_reindex_after_the_gateway_stopped(tmp_path: Path) -> None:
    with serve(create_app(gateway_settings(data_dir=tmp_path))) as url:
        created = httpx.post(
            f"{url}/v1/documents", files={"file": ("boiler.md", BOILER)}, timeout=60
        )
        httpx.post(f"{url}/v1/memories", json={"text": "My name is Ada."})
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    seen: list[int] = []
    chunks, memories, model = asyncio.run(reindex(settings.knowledge, tmp_path, seen.append))
    assert (chunks, memories, model) == (created.json()["chunks"], 1, "all-MiniLM-L6-v2")
    assert seen[-1] == chunks
    with serve(create_app(gateway_settings(data_dir=tmp_path))) as url:
        found = httpx.post(f"{url}/api/v1/rag/search", json={"query": "warranty duration"}).json()
        assert "seven years" in found["data"][0]["text"]
        assert [m["text"] for m in httpx.get(f"{url}/v1/memories").json()["data"]] == [
            "The user's name is Ada."
        ]


def test_the_local_model_is_served_on_v1_embeddings(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    for model in (
        "all-MiniLM-L6-v2",
        "local/all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
    ):
        result = sdk.embeddings.create(model=model, input=["the boiler", "a kettle"])
        assert result.model == "local/all-MiniLM-L6-v2"
        assert [len(item.embedding) for item in result.data] == [384, 384]
        assert result.usage.prompt_tokens == 4
    as_base64 = sdk.embeddings.create(model="all-MiniLM-L6-v2", input="x", encoding_format="base64")
    assert len(base64.b64decode(cast(str, as_base64.data[0].embedding))) == 384 * 4  # float32s
    sdk.close()
    wrong = httpx.post(
        f"{url}/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 8}
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "dimensions"
    tokens = httpx.post(f"{url}/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": [1, 2]})
    assert tokens.status_code == 400
