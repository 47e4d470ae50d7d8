"""The official `openai` SDK's legacy `client.completions.create` against a real gateway on the
fake upstream: plain, streamed, async, a list of prompts, and an upstream without
`/completions`."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import GREETING, OpenAIUpstreamState


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_create(gateway: str, upstream: OpenAIUpstreamState) -> None:
    completion = sdk(gateway).completions.create(
        model="openai/gpt-test", prompt="echo: one two", max_tokens=8, stop=["\n"]
    )
    assert completion.id.startswith("cmpl-")
    assert completion.object == "text_completion"
    assert completion.model == "openai/gpt-test"
    (choice,) = completion.choices
    assert (choice.index, choice.text, choice.finish_reason) == (0, "one two", "stop")
    assert choice.logprobs is None
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 2
    assert upstream.requests[-1]["prompt"] == "echo: one two"


def test_create_streamed(gateway: str) -> None:
    chunks = list(
        sdk(gateway).completions.create(
            model="openai/gpt-test",
            prompt="hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == GREETING
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


async def test_create_async_streamed_and_not(gateway: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="x", max_retries=0) as client:
        completion = await client.completions.create(model="openai/gpt-test", prompt="hi")
        assert completion.choices[0].text == GREETING
        stream = await client.completions.create(model="gpt-test", prompt="echo: a b", stream=True)
        texts = [chunk.choices[0].text async for chunk in stream if chunk.choices]
    assert "".join(texts) == "a b"


def test_a_list_of_prompts(gateway: str) -> None:
    completion = sdk(gateway).completions.create(
        model="openai/gpt-test", prompt=["echo: first", "echo: second"]
    )
    assert [(c.index, c.text) for c in completion.choices] == [(0, "first"), (1, "second")]


def test_an_upstream_without_completions_answers_through_a_chat(
    make_gateway: MakeGateway,
    openai_server: tuple[str, OpenAIUpstreamState],
    upstream: OpenAIUpstreamState,
) -> None:
    url, _ = openai_server
    gateway = make_gateway(openai_base_url=f"{url}/chat-only/v1")
    completion = sdk(gateway).completions.create(model="openai/gpt-test", prompt="echo: fine")
    assert completion.choices[0].text == "fine"
    assert upstream.requests[-1]["messages"] == [{"role": "user", "content": "echo: fine"}]


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"echo": True}, "echo"), ({"suffix": "}"}, "suffix"), ({"logprobs": 1}, "logprobs")],
)
def test_what_is_refused_is_a_bad_request_naming_the_param(
    gateway: str, extra: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).completions.create(model="openai/gpt-test", prompt="x", **extra)  # type: ignore[call-overload]
    assert info.value.param == param
