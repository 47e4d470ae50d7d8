"""The `openai` SDK's Responses API (`client.responses`) against a real gateway: plain, streamed,
the stream helper, async, a function tool round trip, structured output, chains, retrieve and
delete."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from openai.types.responses import CustomToolParam, FunctionToolParam, ResponseInputParam
from pydantic import BaseModel

from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState

WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture
def sdk(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_create(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="openai/gpt-test", input="hi", instructions="Be brief.")
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == GREETING
    assert response.instructions == "Be brief."
    assert response.usage is not None
    assert response.usage.output_tokens == 5
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0


def test_create_streamed(sdk: openai.OpenAI) -> None:
    events = list(sdk.responses.create(model="openai/gpt-test", input="hi", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == GREETING
    assert events[-1].response.output_text == GREETING
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_the_stream_helper(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="openai/gpt-test", input="hi") as stream:
        snapshots = [e.snapshot for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert snapshots[-1] == GREETING
    assert final.output_text == GREETING


async def test_async_create_and_stream(gateway: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0) as sdk:
        response = await sdk.responses.create(model="openai/gpt-test", input="hi")
        assert response.output_text == GREETING
        async with sdk.responses.stream(model="openai/gpt-test", input="echo: async") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
    assert final.output_text == "async"
    assert kinds[-1] == "response.completed"


def test_a_function_tool_round_trip(sdk: openai.OpenAI, upstream: OpenAIUpstreamState) -> None:
    conversation: ResponseInputParam = [{"role": "user", "content": "weather in Paris?"}]
    first = sdk.responses.create(model="openai/tool-model", input=conversation, tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert upstream.requests[-1]["tools"][0]["function"]["strict"] is True
    given_back: ResponseInputParam = [
        *conversation,
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    second = sdk.responses.create(model="openai/tool-model", input=given_back, tools=[WEATHER])
    assert second.output_text == "Tool said: sunny"
    assert upstream.requests[-1]["messages"][-1]["tool_call_id"] == call.call_id


def test_a_custom_tool_round_trip(sdk: openai.OpenAI) -> None:
    python: CustomToolParam = {"type": "custom", "name": "python", "description": "Runs Python"}
    first = sdk.responses.create(model="openai/tool-model", input="run", tools=[python])
    [call] = first.output
    assert call.type == "custom_tool_call"
    assert call.input == "print('hi')"
    second = sdk.responses.create(
        model="openai/tool-model",
        input=[{"type": "custom_tool_call_output", "call_id": call.call_id, "output": "hi"}],
        tools=[python],
        previous_response_id=first.id,
    )
    assert second.output_text == "Tool said: hi"


class City(BaseModel):
    city: str
    population: int


def test_structured_output_reaches_the_upstream_as_response_format(
    sdk: openai.OpenAI, upstream: OpenAIUpstreamState
) -> None:
    parsed = sdk.responses.parse(
        model="openai/gpt-test",
        input='echo: {"city": "Paris", "population": 2100000}',
        text_format=City,
    )
    assert parsed.output_parsed == City(city="Paris", population=2100000)
    sent = upstream.requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "City"
    assert sent["json_schema"]["strict"] is True
    assert set(sent["json_schema"]["schema"]["properties"]) == {"city", "population"}


def test_a_chain_retrieve_and_delete(sdk: openai.OpenAI, upstream: OpenAIUpstreamState) -> None:
    first = sdk.responses.create(model="openai/gpt-test", input="hi")
    second = sdk.responses.create(
        model="openai/gpt-test", input="echo: more", previous_response_id=first.id
    )
    assert second.output_text == "more"
    roles = [m["role"] for m in upstream.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert sdk.responses.retrieve(first.id).output_text == GREETING
    items = list(sdk.responses.input_items.list(second.id, order="asc"))
    assert [item.type for item in items] == ["message", "message", "message"]
    sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.responses.create(model="openai/gpt-test", input="x", previous_response_id=first.id)
    assert caught.value.param == "previous_response_id"


def test_an_unsupported_builtin_tool_is_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(
            model="openai/gpt-test", input="hi", tools=[{"type": "web_search_preview"}]
        )
    assert "web_search_preview" in caught.value.message
