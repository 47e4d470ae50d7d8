"""instructor's structured outputs against a real gateway with its tools on: tool mode (a named
tool_choice, which keeps the gateway's tools out), JSON mode, and streamed partials, sync and
async."""

from __future__ import annotations

import instructor
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState


class City(BaseModel):
    name: str
    population: int


@pytest.fixture
def url(make_gateway: MakeGateway) -> str:
    return make_gateway(enabled_tools=["calculator"], tool_activity_in_content=True)


def client(url: str, mode: instructor.Mode) -> instructor.Instructor:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    return instructor.from_openai(sdk, mode=mode)


def test_tool_mode(url: str, upstream: OpenAIUpstreamState) -> None:
    city = client(url, instructor.Mode.TOOLS).chat.completions.create(
        model="openai/tool-model",
        response_model=City,
        messages=[{"role": "user", "content": "The largest city in France?"}],
    )
    assert city.model_dump() == {"name": "Paris", "population": 2}
    (sent,) = upstream.requests
    assert [t["function"]["name"] for t in sent["tools"]] == ["City"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "City"}}


@pytest.mark.parametrize("mode", [instructor.Mode.JSON, instructor.Mode.JSON_SCHEMA])
def test_json_modes(url: str, mode: instructor.Mode) -> None:
    city = client(url, mode).chat.completions.create(
        model="openai/gpt-test",
        response_model=City,
        messages=[{"role": "user", "content": 'echo: {"name": "Lyon", "population": 522000}'}],
    )
    assert city.model_dump() == {"name": "Lyon", "population": 522000}


def test_streamed_partials_end_in_the_whole_object(url: str) -> None:
    partials = list(
        client(url, instructor.Mode.JSON).chat.completions.create_partial(
            model="openai/gpt-test",
            response_model=City,
            messages=[{"role": "user", "content": 'echo: {"name": "Lyon", "population": 522000}'}],
        )
    )
    assert len(partials) > 1
    assert partials[-1].model_dump() == {"name": "Lyon", "population": 522000}


async def test_async_tool_mode(url: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as sdk:
        city = await instructor.from_openai(sdk).chat.completions.create(
            model="openai/tool-model",
            response_model=City,
            messages=[{"role": "user", "content": "The largest city in France?"}],
        )
    assert city.model_dump() == {"name": "Paris", "population": 2}
