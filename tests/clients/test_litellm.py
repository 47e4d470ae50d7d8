"""The litellm SDK as a client of the gateway (its documented `openai/<model>` form with
`api_base`): completion plain, streamed and async, a tool call, and embeddings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import litellm
import pytest

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

TOOL = {
    "type": "function",
    "function": {
        "name": "find_city",
        "description": "Finds a city by name.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
}


@pytest.fixture
def base(make_gateway: MakeGateway) -> dict[str, str]:
    return {"api_base": f"{make_gateway()}/v1", "api_key": "k"}


@pytest.fixture
def loop() -> Iterator[None]:
    """litellm's sync calls take the thread's current event loop (`get_event_loop`, which makes
    one and leaves it open): give them one, and close it after."""
    current = asyncio.new_event_loop()
    asyncio.set_event_loop(current)
    yield
    asyncio.set_event_loop(None)
    current.close()


@pytest.mark.usefixtures("loop")
def test_completion(base: dict[str, str], upstream: OpenAIUpstreamState) -> None:
    response = litellm.completion(
        model="openai/gpt-test", messages=[{"role": "user", "content": "Hello!"}], **base
    )
    assert response.choices[0].message.content == GREETING
    assert response.usage.total_tokens > 0
    assert upstream.requests[0]["model"] == "gpt-test"  # litellm sent the bare id


@pytest.mark.usefixtures("loop")
def test_streamed_completion(base: dict[str, str]) -> None:
    stream = litellm.completion(
        model="openai/gpt-test",
        messages=[{"role": "user", "content": "Hello!"}],
        stream=True,
        **base,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == GREETING


async def test_async_completion(base: dict[str, str]) -> None:
    response = await litellm.acompletion(
        model="openai/openai/gpt-test", messages=[{"role": "user", "content": "Hello!"}], **base
    )
    assert response.choices[0].message.content == GREETING
    assert response.model.endswith("gpt-test")


@pytest.mark.usefixtures("loop")
def test_a_tool_call(base: dict[str, str]) -> None:
    response = litellm.completion(
        model="openai/tool-model",
        messages=[{"role": "user", "content": "Where is Paris?"}],
        tools=[TOOL],
        **base,
    )
    (call,) = response.choices[0].message.tool_calls
    assert call.function.name == "find_city"
    assert call.function.arguments == '{"name":"Paris"}'


@pytest.mark.usefixtures("loop")
def test_embeddings(base: dict[str, str]) -> None:
    response = litellm.embedding(
        model="openai/embed-test", input=["one", "two"], api_base=base["api_base"], api_key="k"
    )
    assert [len(item["embedding"]) for item in response.data] == [8, 8]
