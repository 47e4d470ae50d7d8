"""The minimal reference passthrough proxy: the floor for a Python gateway.

A Starlette app with ONE shared upstream client (created in the lifespan) that forwards the
request body, unparsed, to the upstream's /v1/chat/completions and returns the upstream body
(streamed back chunk by chunk when the upstream answers text/event-stream). Served by uvicorn,
one worker, uvloop + httptools, access log off.

Run: python benchmarks/reference_proxy.py --port 18001 --upstream http://127.0.0.1:18000 \
        --client aiohttp        # or --client httpx
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-upstream-key"}
TIMEOUT = 60.0
SSE = "text/event-stream"


class AiohttpForwarder:
    def __init__(self, url: str, pool: int) -> None:
        self.url, self.pool = url, pool
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.pool, limit_per_host=self.pool),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: Request) -> Response:
        assert self.session is not None
        resp = await self.session.post(self.url, data=await request.body(), headers=HEADERS)
        ctype = resp.headers.get("content-type", "application/json")
        if ctype.startswith(SSE):
            return StreamingResponse(self._relay(resp), resp.status, media_type=ctype)
        try:
            return Response(await resp.read(), resp.status, media_type=ctype)
        finally:
            resp.release()

    @staticmethod
    async def _relay(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.content.iter_any():
                yield chunk
        finally:
            resp.release()


class HttpxForwarder:
    def __init__(self, url: str, pool: int) -> None:
        self.url, self.pool = url, pool
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=self.pool, max_keepalive_connections=self.pool),
            timeout=TIMEOUT,
            trust_env=False,
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def handle(self, request: Request) -> Response:
        assert self.client is not None
        req = self.client.build_request(
            "POST", self.url, content=await request.body(), headers=HEADERS
        )
        resp = await self.client.send(req, stream=True)
        ctype = resp.headers.get("content-type", "application/json")
        if ctype.startswith(SSE):
            return StreamingResponse(self._relay(resp), resp.status_code, media_type=ctype)
        try:
            return Response(await resp.aread(), resp.status_code, media_type=ctype)
        finally:
            await resp.aclose()

    @staticmethod
    async def _relay(resp: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.aiter_raw():
                yield chunk
        finally:
            await resp.aclose()


def build_app(upstream: str, client: str, pool: int = 100) -> Starlette:
    url = upstream.rstrip("/") + "/v1/chat/completions"
    forwarder = AiohttpForwarder(url, pool) if client == "aiohttp" else HttpxForwarder(url, pool)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await forwarder.start()
        try:
            yield
        finally:
            await forwarder.close()

    routes = [Route("/v1/chat/completions", forwarder.handle, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--upstream", default="http://127.0.0.1:18000")
    parser.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp")
    parser.add_argument("--pool", type=int, default=100, help="max upstream connections")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.upstream, args.client, args.pool),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
