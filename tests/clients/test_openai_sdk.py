"""The openai SDK's chat, models and embeddings against a real gateway with its tools on: plain,
streamed (also through the `.stream()` helper), async, a tool round trip and structured output
(`.parse`). Its completions and responses are in their own files."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from pydantic import BaseModel

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello!"}]
TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "find_city",
        "description": "Finds a city by name.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
}


@pytest.fixture
def client(make_gateway: MakeGateway) -> Iterator[openai.OpenAI]:
    url = make_gateway(enabled_tools=["calculator"])
    with openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        yield client


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "openai/gpt-test" in ids
    assert client.models.retrieve("openai/gpt-test").owned_by == "openai"


def test_chat_plain_and_streamed_carry_the_same_content(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="openai/gpt-test", messages=HELLO)
    stream = client.chat.completions.create(
        model="openai/gpt-test",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain.choices[0].message.content == text == GREETING
    assert chunks[-1].usage is not None
    assert plain.usage is not None
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_the_stream_helper(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="openai/gpt-test", messages=HELLO) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == GREETING


async def test_async_chat(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        answer = await client.chat.completions.create(model="openai/gpt-test", messages=HELLO)
        stream = await client.chat.completions.create(
            model="openai/gpt-test",
            messages=HELLO,
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert answer.choices[0].message.content == text == GREETING


def test_a_tool_round_trip(client: openai.OpenAI, upstream: OpenAIUpstreamState) -> None:
    question: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Where is Paris?"}]
    first = client.chat.completions.create(
        model="openai/tool-model",
        messages=question,
        tools=[TOOL],
    )
    message = first.choices[0].message
    (call,) = message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, call.function.arguments) == ("find_city", '{"name":"Paris"}')
    second = client.chat.completions.create(
        model="openai/tool-model",
        messages=[
            *question,
            message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "in France"},
        ],
        tools=[TOOL],
    )
    assert second.choices[0].message.content == "Tool said: in France"


class City(BaseModel):
    name: str
    population: int


def test_structured_output_with_parse(client: openai.OpenAI, upstream: OpenAIUpstreamState) -> None:
    parsed = client.chat.completions.parse(
        model="openai/gpt-test",
        messages=[{"role": "user", "content": 'echo: {"name": "Lyon", "population": 522000}'}],
        response_format=City,
    )
    assert parsed.choices[0].message.parsed == City(name="Lyon", population=522000)
    assert upstream.requests[0]["response_format"]["type"] == "json_schema"


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="openai/embed-test", input=["one", "two"])
    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
