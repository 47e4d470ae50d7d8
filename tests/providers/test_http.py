"""Line splitting over a real streamed body: lines of any length, split across reads; a stream
read to its end leaves nothing for the event loop to clean up; upstream refusals as the client
sees them through a real gateway, and an upstream's failure logged without the gateway's key."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route

from app.providers.base import Capabilities
from app.providers.http import iter_lines
from app.providers.openai_compat import OpenAICompatProvider
from tests.conftest import MakeGateway
from tests.fakes.ollama_upstream import CONTEXT_OVERFLOW, FakeOllama
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import serve

BIG = b"x" * (1024 * 1024)


async def _lines(_: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"a": 1}\n{"b":'
        yield b" 2}\n"
        for start in range(0, len(BIG), 100_000):
            yield BIG[start : start + 100_000]
        yield b"\nlast line without newline"

    return StreamingResponse(body())


async def test_lines_are_rebuilt_whatever_the_reads_and_their_length() -> None:
    app = Starlette(routes=[Route("/", _lines)])
    with serve(app) as url:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            lines = [line async for line in iter_lines(resp.content)]
    assert lines == [b'{"a": 1}', b'{"b": 2}', BIG, b"last line without newline"]


# --- upstream refusals, through a real gateway ---------------------------------------------------

USER = [{"role": "user", "content": "hi"}]
OVERFLOW = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted in "
    "131072 tokens. Please reduce the length of the messages."
)


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_refusal_keeps_its_type_code_and_param(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, stream: bool
) -> None:
    url = make_gateway(retry_attempts=3)
    body = {"model": "openai/long-context", "messages": USER, "stream": stream}
    resp = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert resp.status_code == 400
    assert resp.json() == {
        "error": {
            "message": f"openai: {OVERFLOW}",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    assert len(upstream.requests) == 1


def test_the_sdk_sees_the_upstreams_code_and_param(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as sdk,
        pytest.raises(openai.BadRequestError) as info,
    ):
        sdk.chat.completions.create(model="openai/long-context", messages=USER)  # type: ignore[arg-type]
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    assert info.value.type == "invalid_request_error"


def test_an_upstream_null_code_stays_null(make_gateway: MakeGateway) -> None:
    resp = httpx.post(
        f"{make_gateway()}/v1/chat/completions",
        json={"model": "openai/bad-request", "messages": USER},
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "message": "openai: fake upstream rejects this request",
        "type": "invalid_request_error",
        "param": "messages",
        "code": None,
    }


def test_ollamas_context_overflow_is_context_length_exceeded(
    make_gateway: MakeGateway, ollama_server: tuple[str, FakeOllama]
) -> None:
    """Ollama says it in words, with 400 from /api/chat and (older versions) 500 from
    /api/embed: both are the client's 400, not retried."""
    ollama_url, fake = ollama_server
    url = make_gateway(ollama_base_url=ollama_url, retry_attempts=3)
    chat = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "ollama/long-context", "messages": USER}
    )
    embed = httpx.post(f"{url}/v1/embeddings", json={"model": "ollama/long-context", "input": "x"})
    for resp, param in ((chat, "messages"), (embed, "input")):
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] == {
            "message": f"ollama: {CONTEXT_OVERFLOW}",
            "type": "invalid_request_error",
            "param": param,
            "code": "context_length_exceeded",
        }
    assert len(fake.chat_requests) == 1
    assert len(fake.embed_requests) == 1


async def _redirect_loop(request: Request) -> RedirectResponse:
    return RedirectResponse(str(request.url), status_code=302)


def test_an_upstream_redirecting_in_a_loop_leaves_its_key_out_of_the_log(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's error for it holds the request's headers in its repr, the key among them."""
    loop = Starlette(routes=[Route("/{path:path}", _redirect_loop, methods=["GET", "POST"])])
    caplog.set_level(logging.DEBUG)
    with serve(loop) as upstream:
        url = make_gateway(openai_base_url=f"{upstream}/v1", openai_api_key="sk-upstream-SECRET")
        resp = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "openai/gpt-test", "messages": USER}
        )
    assert resp.status_code == 502, resp.text
    failures = [r.getMessage() for r in caplog.records if r.name == "app.providers.http"]
    assert failures
    assert all(message.startswith("openai failed: TooManyRedirects: ") for message in failures)
    assert not [r for r in caplog.records if "SECRET" in r.getMessage()]


async def _validation_error(request: Request) -> JSONResponse:
    """FastAPI's 422 (vLLM and other Python servers answer so), quoting the value it refused."""
    body = await request.json()
    problem = {
        "type": "missing",
        "loc": ["body", "messages", 0, "content"],
        "msg": "Field required",
        "input": body["messages"][-1],
    }
    return JSONResponse({"detail": [problem]}, status_code=422)


def test_a_validation_error_is_passed_on_without_the_values_it_quotes(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    route = Route("/v1/chat/completions", _validation_error, methods=["POST"])
    refusing = Starlette(routes=[route])
    caplog.set_level(logging.INFO)
    with serve(refusing) as upstream:
        url = make_gateway(openai_base_url=f"{upstream}/v1")
        body = {"model": "openai/m", "messages": [{"role": "user", "content": "my SECRET text"}]}
        resp = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert message == "openai: body.messages.0.content: Field required"
    assert caplog.records
    assert not [r for r in caplog.records if "SECRET" in r.getMessage()]


async def _sse(_: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"delta": {"role": "assistant", "content": "Hi"}}]}\n\n'
        yield b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'

    return StreamingResponse(body(), media_type="text/event-stream")


async def test_a_stream_left_at_done_leaves_no_generator_for_the_loop_to_close() -> None:
    """An async generator dropped unfinished is closed by the loop's finaliser hook, through
    `call_soon_threadsafe`: a write to the loop's wake-up fd, one more loop turn and a task, for
    every stream."""
    firstiter, finalizer = sys.get_asyncgen_hooks()
    finalised: list[str] = []

    def record(agen: Any) -> None:
        finalised.append(agen.__qualname__)
        if finalizer is not None:
            finalizer(agen)

    app = Starlette(routes=[Route("/v1/chat/completions", _sse, methods=["POST"])])
    with serve(app) as url:
        async with aiohttp.ClientSession() as session:
            provider = OpenAICompatProvider(
                "openai",
                f"{url}/v1",
                "",
                session,
                connect_timeout=5,
                request_timeout=5,
                capabilities=Capabilities(),
            )
            sys.set_asyncgen_hooks(firstiter, record)
            try:
                chunks = [chunk async for chunk in provider.stream_chat("m", {"messages": []})]
            finally:
                sys.set_asyncgen_hooks(firstiter, finalizer)
    assert [c["choices"][0].get("finish_reason") for c in chunks] == [None, "stop"]
    assert finalised == []
