"""The request size limit (MAX_REQUEST_BYTES) on a real uvicorn gateway: a declared
Content-Length over it is refused before the body is read, a chunked body as soon as it grows
past it; either way a 413 in OpenAI's shape, and nothing reaches the upstream or Redis. The
access record: a refusal's reason, the turn's model and tokens, and with LOG_CONTENT the user's
message and the answer (the lines themselves: tests/ops/test_logging.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import redis

from app.ops.logging import Exchange
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState

LIMIT = 64 * 1024
CHAT = {"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def chat_body(size: int) -> bytes:
    """A chat request of exactly `size` bytes."""
    body = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": ""}]})
    padding = size - len(body)
    return orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * padding}]})


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """`body` in pieces: httpx sends an iterator chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def check_413(resp: httpx.Response, limit: int) -> None:
    assert resp.status_code == 413, resp.text
    assert resp.headers["x-request-id"]
    assert resp.json() == {
        "error": {
            "message": f"the request body is larger than {limit} bytes (MAX_REQUEST_BYTES)",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }


async def test_a_declared_content_length_over_the_limit_is_refused_before_the_body(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    """Only the headers are sent: the answer comes without waiting for the gigabyte."""
    url = urlsplit(make_gateway())
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"x-request-id" in head
    assert upstream.requests == []


def test_a_20_mb_body_is_refused_with_the_default_limit(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    resp = httpx.post(
        f"{make_gateway()}/v1/chat/completions", content=chat_body(20_000_000), timeout=30
    )
    check_413(resp, 16 * 1024 * 1024)
    assert upstream.requests == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat", "/v1/embeddings"])
def test_a_chunked_body_growing_past_the_limit_is_refused(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState, redis_url: str, path: str
) -> None:
    url = make_gateway(max_request_bytes=LIMIT)
    body = orjson.dumps({"user_id": "u", "message": "x" * LIMIT, **CHAT})
    resp = httpx.post(f"{url}{path}", content=chunks(body), timeout=30)
    check_413(resp, LIMIT)
    assert upstream.requests == []
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("session*") == []


def test_bodies_up_to_the_limit_are_answered(make_gateway: MakeGateway) -> None:
    url = make_gateway(max_request_bytes=LIMIT)
    body = chat_body(LIMIT)
    assert len(body) == LIMIT
    for content in (body, chunks(body)):
        resp = httpx.post(f"{url}/v1/chat/completions", content=content, timeout=30)
        assert resp.status_code == 200, resp.text
    resp = httpx.post(f"{url}/v1/chat/completions", content=chat_body(LIMIT + 1), timeout=30)
    check_413(resp, LIMIT)


@pytest.mark.parametrize(
    ("key", "body", "status", "reason"),
    [
        ("sk-wrong-SECRET", {"model": "gpt-test", "messages": []}, 401, "Invalid API key."),
        (
            "sk-right",
            {"model": "gpt-test", "messages": [{"role": "user", "content": "SECRET text"}], "n": 0},
            400,
            "Invalid 'n': Input should be greater than or equal to 1",
        ),
        (
            "sk-right",
            {"model": "nope", "messages": [{"role": "user", "content": "SECRET text"}]},
            404,
            "the model 'nope' does not exist",
        ),
    ],
    ids=["401", "400", "404"],
)
def test_a_refusal_is_logged_with_its_request_id_status_and_reason(
    make_gateway: MakeGateway,
    caplog: pytest.LogCaptureFixture,
    key: str,
    body: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    url = make_gateway(api_keys=["sk-right"])
    with caplog.at_level(logging.INFO, logger="app.access"):
        resp = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req-42"},
        )
        assert resp.status_code == status
        for _ in range(200):  # the line is written once the response is sent
            if records := [r for r in caplog.records if r.name == "app.access"]:
                break
            time.sleep(0.01)
    (record,) = records
    line = record.getMessage()
    assert line.startswith(f"POST /v1/chat/completions {status} ")
    assert reason in line
    assert record.request_id == "req-42"  # type: ignore[attr-defined]
    assert "SECRET" not in line


def access_record(caplog: pytest.LogCaptureFixture, rid: str) -> logging.LogRecord:
    """The access record of request `rid`, once written (after the response is sent)."""
    for _ in range(200):
        for record in caplog.records:
            if record.name == "app.access" and record.request_id == rid:  # type: ignore[attr-defined]
                return record
        time.sleep(0.01)
    raise AssertionError(f"no access record for {rid}")


@pytest.mark.parametrize("stream", [False, True])
def test_the_access_record_carries_the_turns_model_and_tokens(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    url = make_gateway()
    caplog.set_level(logging.INFO, logger="app.access")
    body = {**CHAT, "stream": stream}
    resp = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert resp.status_code == 200
    told: Exchange = access_record(caplog, resp.headers["x-request-id"]).exchange  # type: ignore[attr-defined]
    assert (told.method, told.path, told.status) == ("POST", "/v1/chat/completions", 200)
    assert told.model == "openai/gpt-test"
    assert told.input_tokens is not None
    assert told.output_tokens is not None
    assert told.input_tokens > 0
    assert told.output_tokens > 0
    assert (told.question, told.answer) == ("", "")  # LOG_CONTENT is off


def test_log_content_keeps_the_users_message_and_the_answers_beginning(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_gateway(log_content=True)
    caplog.set_level(logging.DEBUG, logger="app")
    resp = httpx.post(f"{url}/v1/chat/completions", json=CHAT)
    rid = resp.headers["x-request-id"]
    told: Exchange = access_record(caplog, rid).exchange  # type: ignore[attr-defined]
    assert told.question == "hi"
    assert told.answer == resp.json()["choices"][0]["message"]["content"]
    (content,) = [r for r in caplog.records if r.name == "app.content"]
    assert content.getMessage() == f'user: "hi" answer: "{told.answer}"'
    assert content.levelno == logging.DEBUG


def test_log_content_keeps_a_stateful_turns_message_and_answer(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_gateway(log_content=True)
    caplog.set_level(logging.DEBUG, logger="app")
    body = {"user_id": "u1", "message": "hi", "model": "openai/gpt-test"}
    resp = httpx.post(f"{url}/chat", json=body)
    assert resp.status_code == 200, resp.text
    told: Exchange = access_record(caplog, resp.headers["x-request-id"]).exchange  # type: ignore[attr-defined]
    assert told.question == "hi"  # not the packed context around it
    assert told.answer
    assert told.answer in resp.text
    assert told.model == "openai/gpt-test"
    assert told.input_tokens
