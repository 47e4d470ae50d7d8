"""What every provider shares: telling embedding models by their names."""

from __future__ import annotations

import pytest

from app.providers.base import looks_like_embedding


@pytest.mark.parametrize(
    "name",
    [
        "text-embedding-3-small",
        "text-embedding-ada-002",
        "nomic-embed-text:latest",
        "mxbai-embed-large",
        "snowflake-arctic-embed:33m",
        "qwen3-embedding:0.6b",
        "bge-m3",
        "BAAI/bge-large-en-v1.5",
        "intfloat/multilingual-e5-large",
        "e5-mistral-7b-instruct",
        "thenlper/gte-large",
        "all-minilm:l6-v2",
    ],
)
def test_embedding_model_names(name: str) -> None:
    assert looks_like_embedding(name)


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o-mini",
        "gpt-5",
        "llama3.2:3b",
        "qwen2.5-coder:7b",
        "phi3.5-mini",
        "gemma3:270m",
        "mistral-nemo",
        "openai/gpt-oss-20b",
        "deepseek-r1:8b",
    ],
)
def test_chat_model_names(name: str) -> None:
    assert not looks_like_embedding(name)
