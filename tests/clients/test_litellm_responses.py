"""litellm's Responses API (`litellm.responses`, `litellm.aresponses`) against a real gateway, as
an `openai/<model>` with `api_base`: plain, streamed, async, and a chain. (It runs offline: see
`conftest.py`.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.responses.streaming_iterator import (
    MockResponsesAPIStreamingIterator,
    SyncResponsesAPIStreamingIterator,
)
from litellm.types.llms.openai import (
    ResponsesAPIResponse,
    ResponsesAPIStreamEvents,
)

from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

# its logging of an async answer puts chat-style usage into its `ResponseAPIUsage`
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")


def text_of(response: ResponsesAPIResponse) -> str:
    texts: list[str] = []
    for item in response.output:
        if getattr(item, "type", None) == "message":
            parts: list[Any] = getattr(item, "content", [])
            texts.extend(part.text for part in parts if part.type == "output_text")
    return "".join(texts)


def test_responses(gateway: str, upstream: OpenAIUpstreamState) -> None:
    response = litellm.responses(
        model="openai/gpt-test",
        input="hi",
        instructions="Be brief.",
        api_base=f"{gateway}/v1",
        api_key="unused",
    )
    assert isinstance(response, ResponsesAPIResponse)
    assert response.id.startswith("resp_")
    assert text_of(response) == GREETING
    assert response.usage is not None
    assert response.usage.output_tokens == 5
    sent = upstream.requests[-1]
    assert sent["model"] == "gpt-test"
    assert sent["messages"][0]["content"].endswith("Be brief.")


@pytest.fixture
def native_streaming() -> Iterator[None]:
    """litellm streams a Responses request only for a model its cost map says streams natively
    (`OpenAIResponsesAPIConfig.should_fake_stream`): any other is asked without `stream` and its
    whole answer replayed as synthetic events. `gpt-test` is registered as such a model."""
    litellm.register_model(
        {
            "gpt-test": {
                "litellm_provider": "openai",
                "mode": "responses",
                "supports_native_streaming": True,
            }
        }
    )
    yield
    litellm.model_cost.pop("gpt-test", None)


@pytest.mark.usefixtures("native_streaming")
def test_streamed_responses(gateway: str) -> None:
    stream = litellm.responses(
        model="openai/gpt-test",
        input="hi",
        stream=True,
        api_base=f"{gateway}/v1",
        api_key="unused",
    )
    assert isinstance(stream, SyncResponsesAPIStreamingIterator)
    events: list[Any] = list(stream)
    kinds = [ResponsesAPIStreamEvents(event.type) for event in events]
    assert kinds[0] == ResponsesAPIStreamEvents.RESPONSE_CREATED
    assert kinds[-1] == ResponsesAPIStreamEvents.RESPONSE_COMPLETED
    text_delta = ResponsesAPIStreamEvents.OUTPUT_TEXT_DELTA
    deltas = [event.delta for event, kind in zip(events, kinds, strict=True) if kind == text_delta]
    assert "".join(deltas) == GREETING
    assert text_of(events[-1].response) == GREETING


async def test_async_responses_and_a_chain(gateway: str, upstream: OpenAIUpstreamState) -> None:
    first = await litellm.aresponses(
        model="openai/gpt-test", input="hi", api_base=f"{gateway}/v1", api_key="unused"
    )
    assert isinstance(first, ResponsesAPIResponse)
    second = await litellm.aresponses(
        model="openai/gpt-test",
        input="echo: and again",
        previous_response_id=first.id,
        api_base=f"{gateway}/v1",
        api_key="unused",
    )
    assert isinstance(second, ResponsesAPIResponse)
    assert text_of(second) == "and again"
    roles = [m["role"] for m in upstream.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_a_model_litellm_does_not_know_gets_a_synthetic_stream(gateway: str) -> None:
    stream = litellm.responses(
        model="openai/gpt-test", input="hi", stream=True, api_base=f"{gateway}/v1", api_key="k"
    )
    assert isinstance(stream, MockResponsesAPIStreamingIterator)
    events: list[Any] = list(stream)
    assert text_of(events[-1].response) == GREETING
