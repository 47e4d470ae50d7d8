"""langchain-openai's ChatOpenAI and OpenAIEmbeddings against a real gateway on the fake upstream:
plain, streaming, async, a tool round trip and structured output, as its users write them."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState


@pytest.fixture
def url(make_gateway: MakeGateway) -> str:
    return make_gateway(enabled_tools=["calculator"])


def chat(url: str, model: str = "openai/gpt-test") -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{url}/v1", api_key="k", model=model, max_retries=0)  # type: ignore[arg-type]


def test_invoke(url: str) -> None:
    answer = chat(url).invoke("Hello!")
    assert answer.content == GREETING
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] > 0


def test_stream_carries_the_same_content(url: str) -> None:
    pieces = [chunk.content for chunk in chat(url).stream("Hello!")]
    assert len(pieces) > 2
    assert "".join(str(p) for p in pieces) == GREETING


async def test_async_invoke_and_stream(url: str) -> None:
    model = chat(url)
    assert (await model.ainvoke("Hello!")).content == GREETING
    text = "".join([str(chunk.content) async for chunk in model.astream("Hello!")])
    assert text == GREETING


@tool
def lookup_city(name: str) -> str:
    """Finds a city by name."""
    return f"{name} is in France"


def test_a_tool_round_trip(url: str, upstream: OpenAIUpstreamState) -> None:
    model = chat(url, "openai/tool-model").bind_tools([lookup_city])
    question = HumanMessage("Where is Paris?")
    call_message = model.invoke([question])
    (call,) = call_message.tool_calls
    assert call["name"] == "lookup_city"
    assert call["args"] == {"name": "Paris"}
    result = ToolMessage(lookup_city.invoke(call["args"]), tool_call_id=call["id"])
    answer = model.invoke([question, call_message, result])
    assert answer.content == "Tool said: Paris is in France"
    offered = [t["function"]["name"] for t in upstream.requests[0]["tools"]]
    assert offered == ["lookup_city", "calculator"]  # the gateway's tools beside the client's


class City(BaseModel):
    name: str
    population: int


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output(url: str, upstream: OpenAIUpstreamState, method: str) -> None:
    if method == "function_calling":  # a named tool_choice: the gateway's tools stay out
        model = chat(url, "openai/tool-model")
        expected = City(name="Paris", population=2)
    else:
        model = chat(url)
        expected = City(name="Lyon", population=522000)
    structured = model.with_structured_output(City, method=method)  # type: ignore[arg-type]
    city = structured.invoke('echo: {"name": "Lyon", "population": 522000}')
    assert city == expected
    sent = upstream.requests[-1]
    if method == "function_calling":
        assert [t["function"]["name"] for t in sent["tools"]] == ["City"]
    else:
        assert sent["response_format"]["type"] == "json_schema"


def test_json_mode_streams_json_only(url: str) -> None:
    model = chat(url).bind(response_format={"type": "json_object"})
    text = "".join(str(c.content) for c in model.stream('echo: {"ok": true}'))
    assert text == '{"ok": true}'


def test_embeddings(url: str) -> None:
    embeddings = OpenAIEmbeddings(
        base_url=f"{url}/v1",
        api_key="k",  # type: ignore[arg-type]
        model="openai/embed-test",
        check_embedding_ctx_length=False,  # else it sends token ids from tiktoken's vocabulary
    )
    vectors = embeddings.embed_documents(["one", "two"])
    assert len(vectors) == 2
    assert len(embeddings.embed_query("one")) == len(vectors[0])
