"""The OpenAI legacy completions wire (`/v1/completions`): the request read into the body the
engine completes, and a turn's events as `text_completion` server-sent events, or collected into
one `text_completion`.

Streamed, each piece of text is a chunk `{"text", "index", "logprobs": null, "finish_reason":
null}`, each choice's finish a chunk of its own with empty text, then (when asked for) the usage
chunk, then `[DONE]`. An error after the first byte is an `{"error": …}` event before `[DONE]`.
Reasoning and tool activity have no place in a text completion; a refusal is the answer's text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, assert_never

import orjson

from app.api.schemas import CompletionRequest, validate
from app.api.wire.sse import comment, mid_answer
from app.chat import events as ev
from app.chat.turn import Turn
from app.providers.router import Needs

DONE = b"data: [DONE]\n\n"
DEFAULT_MAX_TOKENS = 16
"""OpenAI's max_tokens for this endpoint when the request gives none."""


@dataclass(frozen=True, slots=True)
class Request:
    body: dict[str, Any]
    """For `Engine.complete`: the prompts as a list, max_tokens set."""
    needs: Needs
    stream: bool
    include_usage: bool


def decode(body: dict[str, Any]) -> Request:
    """`body` validated (a 400 naming what the gateway cannot do) and made the engine's."""
    req = validate(CompletionRequest, body)
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    stream = bool(req.stream)
    return Request(
        {**body, "prompt": prompts, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS},
        Needs(choices=req.n or 1, whole=not stream),
        stream,
        bool(req.stream_options and req.stream_options.include_usage),
    )


async def stream(turn: Turn, include_usage: bool) -> AsyncIterator[bytes]:
    """The turn as `data: <text_completion>` events, then `data: [DONE]`."""
    head = b'data: {"id":"%s","object":"text_completion","created":%d,"model":%s,' % (
        turn.id.encode(),
        turn.created,
        orjson.dumps(turn.model),
    )
    tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"

    def chunk(text: str, choice: int, finish_reason: str | None = None) -> bytes:
        body = {"text": text, "index": choice, "logprobs": None, "finish_reason": finish_reason}
        return head + b'"choices":[' + orjson.dumps(body) + b"]" + tail

    try:
        async for event in turn.events():
            match event:
                case ev.Text(text=text, choice=choice) | ev.Refusal(text=text, choice=choice):
                    yield chunk(text, choice)
                case ev.Finish(reason=reason, choice=choice):
                    yield chunk("", choice, reason)
                case ev.Waiting(names=names):
                    yield comment("still running " + ", ".join(names))
                case (
                    ev.Reasoning()
                    | ev.ToolCallDelta()
                    | ev.ToolStarted()
                    | ev.ToolFinished()
                    | ev.Sources()
                    | ev.Remembered()
                    | ev.AgentStep()
                    | ev.FollowUps()
                    | ev.Usage()
                    | ev.Timings()
                ):
                    pass
                case _:
                    assert_never(event)
    except Exception as exc:
        error = mid_answer(exc, f"completion from {turn.model}")
        yield b"data: " + orjson.dumps(error.body()) + b"\n\n"
    else:
        if include_usage:
            usage = orjson.dumps((turn.usage or ev.NO_USAGE).public())
            yield head + b'"choices":[],"usage":' + usage + b"}\n\n"
    yield DONE


async def completion(turn: Turn) -> dict[str, Any]:
    """The whole turn as one `text_completion`."""
    texts: defaultdict[int, list[str]] = defaultdict(list)
    finishes: dict[int, str] = {}
    async for event in turn.events():
        match event:
            case ev.Text(text=text, choice=choice) | ev.Refusal(text=text, choice=choice):
                texts[choice].append(text)
            case ev.Finish(reason=reason, choice=choice):
                finishes[choice] = reason
            case (
                ev.Reasoning()
                | ev.ToolCallDelta()
                | ev.ToolStarted()
                | ev.Waiting()
                | ev.ToolFinished()
                | ev.Sources()
                | ev.Remembered()
                | ev.AgentStep()
                | ev.FollowUps()
                | ev.Usage()
                | ev.Timings()
            ):
                pass
            case _:
                assert_never(event)
    return {
        "id": turn.id,
        "object": "text_completion",
        "created": turn.created,
        "model": turn.model,
        "choices": [
            {
                "text": "".join(texts[index]),
                "index": index,
                "logprobs": None,
                "finish_reason": finishes.get(index, "stop"),
            }
            for index in sorted(texts.keys() | finishes.keys())
        ],
        "usage": (turn.usage or ev.NO_USAGE).public(),
    }
