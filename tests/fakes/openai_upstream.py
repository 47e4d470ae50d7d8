"""A fake OpenAI-compatible upstream (as OpenAI, vLLM and llama.cpp server speak it).

Serve it with `tests.fakes.serve.serve(app)` and give the gateway `<url>/v1`. The model name picks
the scenario:

    gpt-test      "Hello from the fake upstream.", one chunk per word; `echo: X` in the last user
                  message answers X instead
    tool-model    calls the offered tools (the first two in parallel when the last user message
                  says "parallel"; a custom tool with the input `print('hi')`); after a
                  `role: "tool"` message answers "Tool said: ..."
    error-500     500          rate-limited  429 + Retry-After: 1      bad-request  400
    long-context  400 context_length_exceeded on `messages`, as OpenAI words it
    chat-only     like gpt-test, but `/v1/completions` answers 404 as OpenAI does for its chat
                  models
    flaky         500 `state.flaky_failures` times (counting down), then like gpt-test
    slow-first    waits `state.slow_first_delay` s before the first chunk (headers go at once)
    cut           stream: role chunk + two content chunks, then the connection drops mid-body
    stall         stream: role chunk + two content chunks, then silence for 60 s
    slow-stream   stream: 50 content chunks, 0.1 s apart
    embed-test    like gpt-test; any known model also embeds
    scripted      plays `state.script`: step k (k = tool-call rounds since the last user message)
                  calls the tools listed in `script[k]` as (name, arguments JSON) pairs; past the
                  script's end answers "Final: " + the tool results since the last user message;
                  a tool-calling step says `state.preamble` first
    replies       answers with the next of `state.replies` (then as gpt-test)
    no-tools      400 as llama.cpp server without --jinja when the body has `tools`; answers
                  the gateway's tool classification prompt with `state.classification`;
                  otherwise "You said: " + the whole last user message
    team          plays the agents pipeline's roles by the system prompt: the planner answers
                  the next of `state.plans` (then a one-subtask plan), the critic the next of
                  `state.verdicts` (then an acceptance), a worker offered tools calls them as
                  tool-model does and then says "Did: <its subtask> with <tool result>", else
                  "Did: <its subtask>", streamed after `state.worker_delay` s; the synthesizer
                  "Answer from N findings."; follow-up prompts get three questions
    anything else 404 model_not_found

`/v1/completions` answers each prompt (a string or a list) as the chat scenario of the same model
answers it as the last user message, as `text_completion` chunks: prompt p's choice c is index
p * n + c. Under `/chat-only/v1` the upstream has models and chat but no `/completions` (404, as a
server without the path; counted in `missing_completions`).

A stream counts in `stream_finished` once its last chunk is sent (before `[DONE]`), or in
`stream_closed_early` (and sets `closed_early_event`) when the client goes away first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Json = dict[str, Any]

MODELS = (
    "gpt-test",
    "tool-model",
    "error-500",
    "rate-limited",
    "bad-request",
    "slow-first",
    "cut",
    "stall",
    "slow-stream",
    "flaky",
    "embed-test",
    "scripted",
    "no-tools",
    "long-context",
    "chat-only",
    "replies",
    "team",
)
GREETING = "Hello from the fake upstream."
_SAMPLE_ARGS: Json = {"string": "Paris", "number": 2, "integer": 2, "boolean": True}


@dataclass
class OpenAIUpstreamState:
    requests: list[Json] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    api_key: str | None = None
    slow_first_delay: float = 2.0
    flaky_failures: int = 2
    stream_closed_early: int = 0
    stream_finished: int = 0
    closed_early_event: threading.Event = field(default_factory=threading.Event)
    script: list[list[tuple[str, str]]] = field(default_factory=list)
    classification: str = '{"tool": null}'
    preamble: str = ""
    missing_completions: int = 0
    replies: list[str] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    worker_delay: float = 0.0


class UpstreamCut(Exception):
    """Raised inside a `cut` stream so uvicorn drops the connection mid-body."""


def _error(
    status: int,
    message: str,
    type_: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status, headers)


def _unauthorized(request: Request, state: OpenAIUpstreamState) -> Response | None:
    if state.api_key is None or request.headers.get("authorization") == f"Bearer {state.api_key}":
        return None
    return _error(
        401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
    )


def _refusal(
    request: Request, state: OpenAIUpstreamState, model: str, body: Json
) -> Response | None:
    """The error response this request gets instead of an answer, if any."""
    if (denied := _unauthorized(request, state)) is not None:
        return denied
    if model not in MODELS:
        return _error(
            404,
            f"The model `{model}` does not exist",
            "invalid_request_error",
            param="model",
            code="model_not_found",
        )
    if model == "error-500":
        return _error(500, "fake upstream exploded", "server_error")
    if model == "flaky" and state.flaky_failures > 0:
        state.flaky_failures -= 1
        return _error(500, "fake upstream is flaky", "server_error")
    if model == "rate-limited":
        return _error(
            429,
            "Rate limit reached for fake upstream",
            "rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": "1"},
        )
    if model == "no-tools" and body.get("tools"):
        return _error(400, "tools param requires --jinja flag", "invalid_request_error")
    if model == "long-context":
        return _error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            param="messages",
            code="context_length_exceeded",
        )
    if model == "bad-request":
        return _error(
            400, "fake upstream rejects this request", "invalid_request_error", param="messages"
        )
    return None


async def _record(request: Request, state: OpenAIUpstreamState) -> Json:
    body: Json = orjson.loads(await request.body())
    state.requests.append(body)
    state.headers.append({k.lower(): v for k, v in request.headers.items()})
    return body


def _text(message: Json) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _tool_calls(body: Json, last_user: str) -> list[Json]:
    tools: list[Json] = body.get("tools") or []
    count = 2 if "parallel" in last_user and len(tools) >= 2 else 1
    calls = []
    for tool in tools[:count]:
        if tool.get("type") == "custom":
            custom = {"name": tool["custom"]["name"], "input": "print('hi')"}
            calls.append(
                {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "custom", "custom": custom}
            )
            continue
        properties: Json = tool["function"].get("parameters", {}).get("properties", {})
        args = {name: _SAMPLE_ARGS.get(schema.get("type")) for name, schema in properties.items()}
        function = {"name": tool["function"]["name"], "arguments": orjson.dumps(args).decode()}
        calls.append(
            {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": function}
        )
    return calls


def _scripted(state: OpenAIUpstreamState, messages: list[Json]) -> tuple[list[Json], str]:
    """The scripted step's tool calls, or (none and) the final text."""
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    since = messages[last_user + 1 :]
    step = sum(1 for m in since if m.get("role") == "assistant" and m.get("tool_calls"))
    if step < len(state.script):
        calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            for name, arguments in state.script[step]
        ]
        return calls, ""
    results = [_text(m) for m in since if m.get("role") == "tool"]
    return [], "Final: " + " | ".join(results)


def _is_worker(body: Json) -> bool:
    messages = body.get("messages") or [{}]
    role = _text(messages[0]) if messages[0].get("role") == "system" else ""
    return role.startswith("You are a worker")


TEAM_PLAN = '{"subtasks": [{"task": "look it up", "tools": [], "needs": "nothing"}]}'


def _team(state: OpenAIUpstreamState, body: Json, last_user: str) -> tuple[list[Json], str]:
    """The team scenario's tool calls, or (none and) its text."""
    messages: list[Json] = body.get("messages") or []
    role = _text(messages[0]) if messages and messages[0].get("role") == "system" else ""
    if "planner" in role:
        return [], state.plans.pop(0) if state.plans else TEAM_PLAN
    if "critic" in role:
        return [], state.verdicts.pop(0) if state.verdicts else '{"verdict": "accept"}'
    if "final answer" in role:
        return [], f"Answer from {role.count('Did: ')} findings."
    if "worker" in role:
        subtask = last_user.split("Your subtask: ", 1)[-1].split("\n", 1)[0]
        if messages[-1].get("role") == "tool":
            return [], f"Did: {subtask} with {_text(messages[-1])}"
        if body.get("tools"):
            return _tool_calls(body, last_user), ""
        return [], f"Did: {subtask}"
    if "follow-up" in role:
        return [], "Is it fast?\nIs it safe?\nIs it cheap?"
    return [], GREETING


def _answer(
    state: OpenAIUpstreamState, model: str, body: Json
) -> tuple[list[str], list[Json], str]:
    """The content chunks, tool calls and finish reason of one choice."""
    messages: list[Json] = body.get("messages") or []
    last_user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    if model == "scripted":
        calls, text = _scripted(state, messages)
        if calls:
            return re.findall(r"\s*\S+", state.preamble), calls, "tool_calls"
    elif model == "no-tools" and "Reply with JSON only" in _text(messages[0]):
        text = state.classification
    elif model == "no-tools":
        text = f"You said: {last_user}"
    elif model == "tool-model" and messages and messages[-1].get("role") == "tool":
        text = f"Tool said: {_text(messages[-1])}"
    elif model == "tool-model" and body.get("tools"):
        return [], _tool_calls(body, last_user), "tool_calls"
    elif model == "team":
        calls, text = _team(state, body, last_user)
        if calls:
            return [], calls, "tool_calls"
    elif model == "replies" and state.replies:
        text = state.replies.pop(0)
    elif model == "slow-stream":
        text = " ".join(f"tick{i}" for i in range(50))
    elif "echo:" in last_user:
        text = last_user.split("echo:", 1)[1].strip()
    else:
        text = GREETING
    pieces = re.findall(r"\s*\S+", text)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and len(pieces) > limit:
        return pieces[:limit], [], "length"
    return pieces, [], "stop"


def _deltas(pieces: list[str], calls: list[Json]) -> list[Json]:
    """One choice's stream deltas, shaped as OpenAI sends them."""
    said = [{"role": "assistant", "content": ""}, *({"content": p} for p in pieces)]
    if not calls:
        return said
    deltas: list[Json] = []
    for index, call in enumerate(calls):
        kind = call["type"]  # function, or custom: its `input` where a function has `arguments`
        field = "input" if kind == "custom" else "arguments"
        name, args = call[kind]["name"], call[kind][field]
        head = {"index": index, **call, kind: {"name": name, field: ""}}
        deltas.append({"tool_calls": [head]})
        deltas += (
            {"tool_calls": [{"index": index, kind: {field: args[i : i + 8]}}]}
            for i in range(0, len(args), 8)
        )
    if pieces:
        return said + deltas
    deltas[0] = {"role": "assistant", "content": None, **deltas[0]}
    return deltas


async def _chunks(
    state: OpenAIUpstreamState, model: str, body: Json, deltas: list[Json], finish: str, usage: Json
) -> AsyncGenerator[Json, None]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    n = int(body.get("n") or 1)

    def chunk(choices: list[Json], usage: Json | None = None) -> Json:
        return {**base, "choices": choices, **({"usage": usage} if include_usage else {})}

    if model == "slow-first":
        await asyncio.sleep(state.slow_first_delay)
    if model == "team" and state.worker_delay and _is_worker(body):
        await asyncio.sleep(state.worker_delay)
    for step, delta in enumerate(deltas):
        if step == 3 and model == "cut":
            raise UpstreamCut
        if step == 3 and model == "stall":
            await asyncio.sleep(60)
        if step and model == "slow-stream":
            await asyncio.sleep(0.1)
        for index in range(n):
            yield chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}])
    for index in range(n):
        yield chunk([{"index": index, "delta": {}, "logprobs": None, "finish_reason": finish}])
    if include_usage:
        yield chunk([], usage)


def _as_chat(body: Json, prompt: str) -> Json:
    """The chat request whose answer is the completion of `prompt`."""
    return {**body, "messages": [{"role": "user", "content": prompt}]}


async def _completion_chunks(
    state: OpenAIUpstreamState, model: str, body: Json, prompts: list[str], n: int
) -> AsyncGenerator[Json, None]:
    """Each prompt's chat chunks (`_chunks`) as `text_completion` chunks, choices numbered on."""
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for position, prompt in enumerate(prompts):
        chat = _as_chat(body, prompt)
        pieces, _, finish = _answer(state, model, chat)
        counts = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(pieces) * n}
        async with aclosing(
            _chunks(state, model, chat, _deltas(pieces, []), finish, counts)
        ) as chunks:
            async for chunk in chunks:
                if not chunk["choices"]:
                    for name in ("prompt_tokens", "completion_tokens"):
                        usage[name] += chunk["usage"][name]
                    continue
                choice = chunk["choices"][0]
                text = choice["delta"].get("content", "")
                if text or choice["finish_reason"]:
                    yield {
                        **chunk,
                        "id": chunk["id"].replace("chatcmpl-", "cmpl-"),
                        "object": "text_completion",
                        "choices": [
                            {
                                "text": text,
                                "index": position * n + choice["index"],
                                "logprobs": None,
                                "finish_reason": choice["finish_reason"],
                            }
                        ],
                    }
    if (body.get("stream_options") or {}).get("include_usage"):
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        yield {"object": "text_completion", "model": model, "choices": [], "usage": usage}


async def _sse(
    state: OpenAIUpstreamState, chunks: AsyncGenerator[Json, None]
) -> AsyncIterator[bytes]:
    try:
        async with aclosing(chunks):
            async for chunk in chunks:
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        state.stream_closed_early += 1
        state.closed_early_event.set()
        raise
    state.stream_finished += 1
    yield b"data: [DONE]\n\n"


def create_openai_upstream(
    state: OpenAIUpstreamState | None = None,
) -> tuple[Starlette, OpenAIUpstreamState]:
    state = state or OpenAIUpstreamState()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(request: Request) -> Response:
        if (denied := _unauthorized(request, state)) is not None:
            return denied
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        body = await _record(request, state)
        model = str(body.get("model"))
        if (refused := _refusal(request, state, model, body)) is not None:
            return refused
        pieces, calls, finish = _answer(state, model, body)
        deltas = _deltas(pieces, calls)
        n = int(body.get("n") or 1)
        prompt = sum(len(_text(m).split()) for m in body.get("messages") or [])
        completion = (len(deltas) - 1) * n
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        usage["total_tokens"] = prompt + completion
        if body.get("stream"):
            chunks = _chunks(state, model, body, deltas, finish, usage)
            return StreamingResponse(_sse(state, chunks), media_type="text/event-stream")
        if model == "slow-first":
            await asyncio.sleep(state.slow_first_delay)
        message: Json = {"role": "assistant", "content": None if calls else "".join(pieces)}
        if calls:
            message["tool_calls"] = calls
        choice = {"message": message, "logprobs": None, "finish_reason": finish}
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": i, **choice} for i in range(n)],
                "usage": usage,
            }
        )

    async def completions(request: Request) -> Response:
        body = await _record(request, state)
        model = str(body.get("model"))
        if (refused := _refusal(request, state, model, body)) is not None:
            return refused
        if model == "chat-only":
            return _error(
                404,
                "This is a chat model and not supported in the v1/completions endpoint. "
                "Did you mean to use v1/chat/completions?",
                "invalid_request_error",
                param="model",
            )
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
        n = int(body.get("n") or 1)
        if body.get("stream"):
            return StreamingResponse(
                _sse(state, _completion_chunks(state, model, body, prompts, n)),
                media_type="text/event-stream",
            )
        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
        for position, text in enumerate(prompts):
            pieces, _, finish = _answer(state, model, _as_chat(body, text))
            usage["prompt_tokens"] += len(text.split())
            usage["completion_tokens"] += len(pieces) * n
            choices += [
                {
                    "text": "".join(pieces),
                    "index": position * n + c,
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for c in range(n)
            ]
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return JSONResponse(
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                "usage": usage,
            }
        )

    async def no_completions(request: Request) -> Response:
        state.missing_completions += 1
        return Response("Not Found", 404, media_type="text/plain")

    async def embeddings(request: Request) -> Response:
        body = await _record(request, state)
        model = str(body.get("model"))
        if (refused := _refusal(request, state, model, body)) is not None:
            return refused
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and isinstance(inputs[0], int)):
            inputs = [inputs]
        dim = int(body.get("dimensions") or 8)
        data, tokens = [], 0
        for index, item in enumerate(inputs or []):
            tokens += len(item.split()) if isinstance(item, str) else len(item)
            raw = [b / 127.5 - 1 for b in hashlib.shake_256(orjson.dumps(item)).digest(dim)]
            norm = math.sqrt(sum(x * x for x in raw))
            vector = [x / norm for x in raw]
            embedding: list[float] | str = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

    routes = [
        Route("/health", health),
        Route("/v1/models", models),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/chat-only/v1/models", models),
        Route("/chat-only/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat-only/v1/completions", no_completions, methods=["POST"]),
    ]
    return Starlette(routes=routes), state
