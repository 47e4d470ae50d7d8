"""A zero-delay OpenAI-compatible upstream for benchmarks.

A raw asyncio Protocol on uvloop with httptools parsing, HTTP/1.1 keep-alive and every response
pre-serialised, so it costs a few microseconds per request and is never the bottleneck.

    POST /v1/chat/completions   a fixed chat.completion, or with "stream": true a handful of SSE
                                chunks (role, 3 contents or --chunks N, finish, usage if
                                stream_options.include_usage) then `data: [DONE]`, all in one
                                write
                                When the request offers tools and its first user message says
                                `steps=N`, the stream is a `calculator` tool call until N tool
                                results are in the messages (for benchmarks/tool_steps.py)
    GET  /v1/models             one model, "bench-model"

Run: python benchmarks/fake_upstream.py --port 18000 [--chunks 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from typing import Any, cast

import httptools
import orjson
import uvloop

MODEL = "bench-model"
CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}


def _response(status: str, ctype: bytes, body: bytes, *, keep_alive: bool) -> bytes:
    conn = b"keep-alive" if keep_alive else b"close"
    return b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n%s" % (
        status.encode(),
        ctype,
        len(body),
        conn,
        body,
    )


def _stream_response(events: list[bytes], *, keep_alive: bool) -> bytes:
    conn = b"keep-alive" if keep_alive else b"close"
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\nconnection: %s\r\n\r\n" % conn
    )
    return head + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


CHUNK = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED}


def _event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    obj = {**CHUNK, "model": MODEL, "choices": choices, **extra}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _event([{"index": 0, "delta": delta, "finish_reason": finish}])


JSON = b"application/json"
COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
)
MODELS = orjson.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": CREATED}]}
)
CONTENTS = ["Hello", "! How can I", " help you today?"]


def _events(chunks: int) -> list[bytes]:
    """Role (empty content), `chunks` content chunks, finish: the default 3 say CONTENTS."""
    contents = CONTENTS if chunks == len(CONTENTS) else ["Hello", *[" there"] * (chunks - 1)]
    return [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": text}) for text in contents),
        _chunk({}, "stop"),
    ]


TOOL_EVENTS = [
    _chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_bench",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": ""},
                }
            ],
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"expression": "1+1"}'}}]}),
    _chunk({}, "tool_calls"),
]
USAGE_EVENT = _event([], usage=USAGE)
DONE = b"data: [DONE]\n\n"


def _error(message: str, kind: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "code": None}})


def _answers(chunks: int) -> dict[str, dict[bool, bytes]]:
    """(keep_alive -> response) for every fixed answer; streams carry `chunks` contents."""
    events = _events(chunks)
    return {
        **FIXED,
        "stream": {k: _stream_response([*events, DONE], keep_alive=k) for k in (True, False)},
        "stream_usage": {
            k: _stream_response([*events, USAGE_EVENT, DONE], keep_alive=k) for k in (True, False)
        },
    }


FIXED: dict[str, dict[bool, bytes]] = {
    "completion": {k: _response("200 OK", JSON, COMPLETION, keep_alive=k) for k in (True, False)},
    "tool_call": {
        k: _stream_response([*TOOL_EVENTS, USAGE_EVENT, DONE], keep_alive=k) for k in (True, False)
    },
    "models": {k: _response("200 OK", JSON, MODELS, keep_alive=k) for k in (True, False)},
    "bad_json": {
        k: _response(
            "400 Bad Request", JSON, _error("bad request", "invalid_request_error"), keep_alive=k
        )
        for k in (True, False)
    },
    "not_found": {
        k: _response("404 Not Found", JSON, _error("no such route", "not_found"), keep_alive=k)
        for k in (True, False)
    },
}
ANSWERS = _answers(len(CONTENTS))


def _answer(method: bytes, path: bytes, body: bytes) -> str:
    if path == b"/v1/chat/completions" and method == b"POST":
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "bad_json"
        if not isinstance(req, dict) or req.get("stream") is not True:
            return "completion"
        if req.get("tools") and _steps_left(req):
            return "tool_call"
        opts = req.get("stream_options")
        return "stream_usage" if isinstance(opts, dict) and opts.get("include_usage") else "stream"
    if path == b"/v1/models" and method == b"GET":
        return "models"
    return "not_found"


def _steps_left(req: dict[str, Any]) -> bool:
    messages = req.get("messages") or []
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    wanted = re.search(r"steps=(\d+)", users[0]) if users and isinstance(users[0], str) else None
    done = sum(1 for m in messages if m.get("role") == "tool")
    return wanted is not None and done < int(wanted.group(1))


class Upstream(asyncio.Protocol):
    """One connection: parse requests with httptools and answer each as soon as it completes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(ANSWERS["bad_json"][False])
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        keep_alive = self.parser.should_keep_alive()
        path = self.url.split(b"?", 1)[0]
        answer = _answer(self.parser.get_method(), path, b"".join(self.body))
        transport.write(ANSWERS[answer][keep_alive])
        if not keep_alive:
            transport.close()


async def serve(host: str, port: int, chunks: int = len(CONTENTS)) -> None:
    global ANSWERS
    ANSWERS = _answers(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument(
        "--chunks", type=int, default=len(CONTENTS), help="content chunks in a stream (>= 1)"
    )
    args = parser.parse_args()
    if args.chunks < 1:
        parser.error("--chunks must be at least 1")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port, args.chunks))


if __name__ == "__main__":
    main()
