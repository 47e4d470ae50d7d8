"""LiteLLM's `text_completion` against a real gateway on the fake upstream, through both of its
OpenAI routes (`text-completion-openai/…` and `openai/…`), plain and streamed."""

from __future__ import annotations

import litellm
import pytest

from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState


@pytest.mark.parametrize("route", ["text-completion-openai", "openai"])
def test_text_completion(gateway: str, upstream: OpenAIUpstreamState, route: str) -> None:
    response = litellm.text_completion(
        model=f"{route}/openai/gpt-test",
        prompt="echo: from litellm",
        api_base=f"{gateway}/v1",
        api_key="unused",
        max_tokens=8,
    )
    assert response.object == "text_completion"
    assert response.choices[0].text == "from litellm"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens == 2
    assert upstream.requests[-1]["prompt"] == "echo: from litellm"


def test_text_completion_streamed(gateway: str) -> None:
    chunks = litellm.text_completion(
        model="text-completion-openai/openai/gpt-test",
        prompt="hi",
        api_base=f"{gateway}/v1",
        api_key="unused",
        stream=True,
    )
    texts = [chunk.choices[0].text or "" for chunk in chunks if chunk.choices]
    assert "".join(texts) == GREETING
