"""pydantic-ai's OpenAIChatModel against a real gateway with its tools on: a plain run, a streamed
run, a function tool, and structured output (its default: an output tool with tool_choice
"required", which keeps the gateway's tools out)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState


@pytest.fixture
async def provider(make_gateway: MakeGateway) -> AsyncIterator[OpenAIProvider]:
    url = make_gateway(enabled_tools=["calculator"], tool_activity_in_content=True)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        yield OpenAIProvider(openai_client=client)


def model(provider: OpenAIProvider, name: str = "openai/gpt-test") -> OpenAIChatModel:
    return OpenAIChatModel(name, provider=provider)


async def test_run(provider: OpenAIProvider) -> None:
    result = await Agent(model(provider)).run("Hello!")
    assert result.output == GREETING
    assert result.usage.total_tokens > 0


async def test_run_stream_carries_the_same_text(provider: OpenAIProvider) -> None:
    async with Agent(model(provider)).run_stream("Hello!") as result:
        pieces = [piece async for piece in result.stream_text(delta=True, debounce_by=None)]
    assert len(pieces) > 1
    assert "".join(pieces) == GREETING


async def test_a_function_tool(provider: OpenAIProvider, upstream: OpenAIUpstreamState) -> None:
    agent = Agent(model(provider, "openai/tool-model"))

    @agent.tool_plain
    def find_city(name: str) -> str:
        """Finds a city by name."""
        return f"{name} is in France"

    result = await agent.run("Where is Paris?")
    assert result.output == "Tool said: Paris is in France"
    offered = [t["function"]["name"] for t in upstream.requests[0]["tools"]]
    assert offered == ["find_city", "calculator"]


class City(BaseModel):
    name: str
    population: int


async def test_structured_output(provider: OpenAIProvider, upstream: OpenAIUpstreamState) -> None:
    result = await Agent(model(provider, "openai/tool-model"), output_type=City).run(
        "Largest city?"
    )
    assert result.output == City(name="Paris", population=2)
    (sent,) = upstream.requests
    assert sent["tool_choice"] == "required"
    assert [t["function"]["name"] for t in sent["tools"]] == ["final_result"]
