"""openai-agents against a real gateway: its default Responses model (plain, with a function tool
round trip, streamed) and its chat-completions model. Tracing is off: it would export to OpenAI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.items import ToolCallItem, ToolCallOutputItem

from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

RUN = RunConfig(tracing_disabled=True)


@pytest.fixture(autouse=True)
def _no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


@pytest.fixture
async def sdk(gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway}/v1", api_key="unused", max_retries=0
    ) as client:
        yield client


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


async def test_an_agent_on_the_responses_api(
    sdk: openai.AsyncOpenAI, upstream: OpenAIUpstreamState
) -> None:
    model = OpenAIResponsesModel(model="openai/gpt-test", openai_client=sdk)
    agent = Agent(name="Greeter", instructions="Greet.", model=model)
    result = await Runner.run(agent, "hi", run_config=RUN)
    assert result.final_output == GREETING
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].endswith("Greet.")


async def test_a_function_tool_round_trip(
    sdk: openai.AsyncOpenAI, upstream: OpenAIUpstreamState
) -> None:
    model = OpenAIResponsesModel(model="openai/tool-model", openai_client=sdk)
    agent = Agent(name="Weather", instructions="Help.", model=model, tools=[get_weather])
    result = await Runner.run(agent, "weather in Paris?", run_config=RUN)
    assert result.final_output == "Tool said: sunny in Paris"
    kinds = [type(item) for item in result.new_items]
    assert ToolCallItem in kinds
    assert ToolCallOutputItem in kinds
    first, second = upstream.requests[-2:]
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]


async def test_a_streamed_run(sdk: openai.AsyncOpenAI) -> None:
    model = OpenAIResponsesModel(model="openai/tool-model", openai_client=sdk)
    agent = Agent(name="Weather", instructions="Help.", model=model, tools=[get_weather])
    result = Runner.run_streamed(agent, "weather in Paris?", run_config=RUN)
    raw: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            raw.append(event.data.type)
    assert result.final_output == "Tool said: sunny in Paris"
    assert "response.function_call_arguments.delta" in raw
    assert "response.output_text.delta" in raw
    assert raw.count("response.completed") == 2


async def test_an_agent_on_chat_completions(
    sdk: openai.AsyncOpenAI, upstream: OpenAIUpstreamState
) -> None:
    model = OpenAIChatCompletionsModel(model="openai/tool-model", openai_client=sdk)
    agent = Agent(name="Weather", instructions="Help.", model=model, tools=[get_weather])
    result = await Runner.run(agent, "weather in Paris?", run_config=RUN)
    assert result.final_output == "Tool said: sunny in Paris"
    assert upstream.requests[-1]["messages"][-1]["role"] == "tool"
