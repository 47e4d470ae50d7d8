"""The OpenAI legacy completions wire: the request read into the engine's body, a turn's events
collected per choice, and an error after the first byte in-band. (The golden files pin the
bytes of the fixed turn.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from app.api.wire import openai_completions
from app.chat.events import Event, Finish, Reasoning, Text, Usage
from app.chat.replay import play
from app.chat.turn import Turn
from app.errors import InvalidRequest, UpstreamError
from app.providers.router import Needs


def test_a_request_is_read_into_the_engines_body() -> None:
    body = {"model": "m", "prompt": "Once", "stream": True, "stream_options": {"include_usage": 1}}
    req = openai_completions.decode(body)
    assert req.body == {**body, "prompt": ["Once"], "max_tokens": 16}  # OpenAI's default
    assert req.needs == Needs(choices=1, whole=False)
    assert (req.stream, req.include_usage) == (True, True)

    listed = openai_completions.decode({"prompt": ["a", "b"], "n": 3, "max_tokens": 5})
    assert listed.body["prompt"] == ["a", "b"]
    assert listed.body["max_tokens"] == 5
    assert listed.needs == Needs(choices=3, whole=True)
    assert (listed.stream, listed.include_usage) == (False, False)


def test_what_the_gateway_cannot_do_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequest) as info:
        openai_completions.decode({"prompt": "x", "suffix": "}"})
    assert info.value.param == "suffix"


async def test_choices_are_collected_in_order_each_with_its_finish() -> None:
    events: list[Event] = [
        Text("b", choice=1),
        Reasoning("hm"),
        Text("a"),
        Finish("length", choice=1),
        Finish("stop"),
        Finish("stop", choice=2),
        Usage(3, 4, 7),
    ]
    body = await openai_completions.completion(Turn("openai/m", play(events), id="cmpl-1"))
    assert body["object"] == "text_completion"
    assert body["choices"] == [
        {"text": "a", "index": 0, "logprobs": None, "finish_reason": "stop"},
        {"text": "b", "index": 1, "logprobs": None, "finish_reason": "length"},
        {"text": "", "index": 2, "logprobs": None, "finish_reason": "stop"},
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


async def _cut() -> AsyncIterator[Event]:
    yield Text("Hal")
    raise UpstreamError("openai", "the stream ended before the answer was complete")


async def test_an_error_after_the_first_byte_is_in_band_then_done() -> None:
    turn = Turn("openai/m", _cut(), id="cmpl-1", created=7)
    frames = [f async for f in openai_completions.stream(turn, include_usage=True)]
    assert orjson.loads(frames[0][6:])["choices"][0]["text"] == "Hal"
    assert frames[-2].startswith(b'data: {"error":{"message":"openai: the stream ended')
    assert frames[-1] == b"data: [DONE]\n\n"
    assert len(frames) == 3  # no finish, no usage after an error
