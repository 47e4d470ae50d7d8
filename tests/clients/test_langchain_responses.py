"""langchain-openai's `ChatOpenAI(use_responses_api=True)` against a real gateway: invoke,
stream, async, and a tool call given back with its result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

Models = Callable[..., ChatOpenAI]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.fixture
async def model(gateway: str) -> AsyncIterator[Models]:
    """`ChatOpenAI`s on the gateway's Responses API; their clients are closed afterwards."""
    made: list[ChatOpenAI] = []

    def make(name: str = "openai/gpt-test") -> ChatOpenAI:
        chat = ChatOpenAI(
            model=name,
            base_url=f"{gateway}/v1",
            api_key=lambda: "unused",
            max_retries=0,
            use_responses_api=True,
        )
        made.append(chat)
        return chat

    yield make
    for chat in made:
        chat.root_client.close()
        await chat.root_async_client.close()


def test_invoke(model: Models, upstream: OpenAIUpstreamState) -> None:
    answer = model().invoke("hi")
    assert answer.text == GREETING
    assert isinstance(answer, AIMessage)
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] == 5
    assert answer.response_metadata["id"].startswith("resp_")
    assert upstream.requests[-1]["messages"][-1] == {"role": "user", "content": "hi"}


def test_stream(model: Models) -> None:
    chunks = list(model().stream("hi"))
    assert "".join(chunk.text for chunk in chunks) == GREETING


async def test_async_invoke_and_stream(model: Models) -> None:
    chat = model()
    assert (await chat.ainvoke("echo: async works")).text == "async works"
    chunks = [chunk async for chunk in chat.astream("echo: streamed too")]
    assert "".join(chunk.text for chunk in chunks) == "streamed too"


def test_a_tool_call_and_its_result(model: Models, upstream: OpenAIUpstreamState) -> None:
    chat = model("openai/tool-model").bind_tools([get_weather])
    question = HumanMessage("weather in Paris?")
    called = chat.invoke([question])
    assert isinstance(called, AIMessage)
    [call] = called.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    answer = chat.invoke([question, called, result])
    assert answer.text == "Tool said: sunny in Paris"
    assert upstream.requests[-1]["messages"][-1]["role"] == "tool"
