"""The client libraries against the embedded Gemma 3 270M model, for what a small base model
without function calling can do: chat, the Responses API, legacy completions and Anthropic's
Messages, streamed or not, and structured output by grammar. What it says is not checked, only
that every library gets a well-formed answer."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import instructor
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

pytestmark = pytest.mark.slow

MODEL = "local/gemma-3-270m"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    pytest.importorskip("llama_cpp")
    from app.main import create_app
    from tests.conftest import gateway_settings
    from tests.fakes.serve import serve

    with serve(create_app(gateway_settings(local_enabled=True, request_timeout=60))) as url:
        yield url


@pytest.fixture
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        yield client


def test_openai_chat_responses_and_completions(sdk: openai.OpenAI) -> None:
    chat = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello!"}], max_tokens=8
    )
    assert chat.choices[0].message.content
    response = sdk.responses.create(model=MODEL, input="Hello!", max_output_tokens=8)
    assert response.output_text
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    completion = sdk.completions.create(model=MODEL, prompt="The sea is", max_tokens=8)
    assert completion.choices[0].text


def test_langchain_streams(url: str) -> None:
    llm = ChatOpenAI(base_url=f"{url}/v1", api_key="k", model=MODEL, max_completion_tokens=8)  # type: ignore[arg-type]
    assert "".join(str(chunk.content) for chunk in llm.stream("Hello!"))


def test_anthropic_messages_stream(url: str) -> None:
    hello: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello!"}]
    with (
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client,
        client.messages.stream(model=MODEL, max_tokens=8, messages=hello) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.stop_reason in ("end_turn", "max_tokens")


class Sum(BaseModel):
    result: int


def test_instructor_json_mode_gets_json_by_grammar(sdk: openai.OpenAI) -> None:
    answer = instructor.from_openai(sdk, mode=instructor.Mode.JSON_SCHEMA).chat.completions.create(
        model=MODEL,
        response_model=Sum,
        messages=[{"role": "user", "content": "What is 2+2?"}],
        max_tokens=32,
        max_retries=0,
    )
    assert isinstance(answer.result, int)
