"""A recording reverse proxy: what a client (OpenWebUI) sends to the gateway, kept verbatim.

`create_recorder(target)` returns a Starlette app that forwards every request to `target`
(streaming the answer back as it comes) and appends each request to `Recording.exchanges`:
method, path, headers (Authorization masked) and the JSON body as sent. Serve it with
`tests.fakes.serve.serve(app)`; `jsonl` also appends each exchange to a file as it happens.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

Json = dict[str, Any]
_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


@dataclass
class Recording:
    exchanges: list[Json] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chat_bodies(self) -> list[Json]:
        """The JSON bodies POSTed to /v1/chat/completions, in order."""
        with self.lock:
            return [
                e["body"]
                for e in self.exchanges
                if e["path"].endswith("/chat/completions") and isinstance(e["body"], dict)
            ]


def create_recorder(target: str, jsonl: Path | None = None) -> tuple[Starlette, Recording]:
    """A proxy to `target` (e.g. `http://127.0.0.1:9099`) that records what passes through."""
    recording = Recording()
    client = httpx.AsyncClient(base_url=target, timeout=httpx.Timeout(600, connect=10))

    async def forward(request: Request) -> StreamingResponse:
        raw = await request.body()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in request.headers.items()}
        shown = {k: ("Bearer ***" if k == "authorization" else v) for k, v in headers.items()}
        exchange = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": shown,
            "body": body,
        }
        with recording.lock:
            recording.exchanges.append(exchange)
            if jsonl is not None:
                with jsonl.open("ab") as out:
                    out.write(orjson.dumps(exchange) + b"\n")
        upstream = client.build_request(
            request.method,
            request.url.path,
            params=request.url.query,
            headers={k: v for k, v in headers.items() if k not in _HOP},
            content=raw,
        )
        response = await client.send(upstream, stream=True)

        async def relay() -> AsyncIterator[bytes]:
            async for piece in response.aiter_raw():
                yield piece

        return StreamingResponse(
            relay(),
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() not in _HOP},
            background=BackgroundTask(response.aclose),
        )

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    app = Starlette(routes=[Route("/{path:path}", forward, methods=methods)])
    return app, recording
