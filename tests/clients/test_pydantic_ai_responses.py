"""pydantic-ai's `OpenAIResponsesModel` against a real gateway: a run, a tool round trip,
structured output and a streamed run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import openai
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

Models = Callable[..., OpenAIResponsesModel]


@pytest.fixture
async def model(gateway: str) -> AsyncIterator[Models]:
    """`OpenAIResponsesModel`s on the gateway, through one client closed afterwards."""
    async with openai.AsyncOpenAI(
        base_url=f"{gateway}/v1", api_key="unused", max_retries=0
    ) as client:
        provider = OpenAIProvider(openai_client=client)

        def make(name: str = "openai/gpt-test") -> OpenAIResponsesModel:
            return OpenAIResponsesModel(name, provider=provider)

        yield make


async def test_a_run(model: Models, upstream: OpenAIUpstreamState) -> None:
    agent = Agent(model(), instructions="Greet.")
    result = await agent.run("hi")
    assert result.output == GREETING
    assert result.usage.output_tokens == 5
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].endswith("Greet.")


async def test_a_tool_round_trip(model: Models, upstream: OpenAIUpstreamState) -> None:
    agent = Agent(model("openai/tool-model"))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    result = await agent.run("weather in Paris?")
    assert result.output == "Tool said: sunny in Paris"
    assert upstream.requests[-1]["messages"][-1]["role"] == "tool"


class City(BaseModel):
    city: str
    population: int


async def test_structured_output_by_tool_call(model: Models) -> None:
    agent = Agent(model("openai/tool-model"), output_type=City)
    result = await agent.run("a city")
    assert result.output == City(city="Paris", population=2)


async def test_structured_output_by_json_schema(
    model: Models, upstream: OpenAIUpstreamState
) -> None:
    agent = Agent(model(), output_type=NativeOutput(City))
    result = await agent.run('echo: {"city": "Paris", "population": 2100000}')
    assert result.output == City(city="Paris", population=2100000)
    sent = upstream.requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert set(sent["json_schema"]["schema"]["properties"]) == {"city", "population"}


async def test_a_streamed_run(model: Models) -> None:
    agent = Agent(model())
    async with agent.run_stream("hi") as result:
        pieces = [text async for text in result.stream_text(delta=True)]
    assert "".join(pieces) == GREETING
