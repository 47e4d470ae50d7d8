"""A small web site for the fetch tools. Serve it with `tests.fakes.serve.serve(app)`.

    /article        an HTML article inside a menu, a sidebar and a footer
    /plain          text/plain            /notes.md    text/markdown      /data.json  JSON
    /latin1         text/plain in ISO-8859-1
    /report.pdf     application/pdf       /blob        application/octet-stream
    /huge           200 000 bytes of text/plain
    /slow           HTML whose body trickles in, one byte every 50 ms, for up to 30 s
    /cut            promises 1000 bytes of text, sends 10 and drops the connection
    /missing        404                   /broken      500
    /redirect?to=X  302 to X              /loop        302 to itself, for ever

`state.hits` counts the requests for each path and `state.hosts` records their Host headers, so
tests can tell whether a refused URL was ever requested.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

ARTICLE_TITLE = "The Lighthouse Keepers of Skerryvore"
ARTICLE_SENTENCE = "Skerryvore lighthouse was lit for the first time on the first of February 1844."
MENU_TEXT = "Subscribe to our newsletter"

ARTICLE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{ARTICLE_TITLE}</title></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About</a></li>
<li><a href="/subscribe">{MENU_TEXT}</a></li></ul></nav>
<aside><h3>Popular</h3><ul><li><a href="/a">Ten ways to cook rice</a></li></ul></aside>
<article>
<h1>{ARTICLE_TITLE}</h1>
<p>{ARTICLE_SENTENCE} It stands on a reef twelve miles south-west of Tiree, and its tower of
granite rises forty-eight metres above the rocks.</p>
<p>The keepers lived in a shore station at Hynish, and each served a month at a time on the
rock before the relief boat brought them home across the sound.</p>
<p>A fire in 1954 ended the keepers' watch; the light has been automatic since 1959 and is
still kept by the Northern Lighthouse Board.</p>
</article>
<footer><p>Copyright Example Press. {MENU_TEXT}.</p></footer>
</body></html>"""

PLAIN = "Plain notes: the tide turns at noon."
MARKDOWN = "# Notes\n\n- tides turn at *noon*\n"
LATIN1 = "Café crème à la carte"
HUGE_SIZE = 200_000


@dataclass
class PagesState:
    hits: Counter[str] = field(default_factory=Counter)
    hosts: list[str] = field(default_factory=list)


def create_pages_app() -> tuple[Starlette, PagesState]:
    state = PagesState()

    def counted(response: Response, request: Request) -> Response:
        state.hits[request.url.path] += 1
        state.hosts.append(request.headers.get("host", ""))
        return response

    async def article(request: Request) -> Response:
        return counted(Response(ARTICLE, media_type="text/html; charset=utf-8"), request)

    async def plain(request: Request) -> Response:
        return counted(PlainTextResponse(PLAIN), request)

    async def notes(request: Request) -> Response:
        return counted(Response(MARKDOWN, media_type="text/markdown"), request)

    async def data(request: Request) -> Response:
        return counted(JSONResponse({"tide": "noon", "height_m": 4.2}), request)

    async def latin1(request: Request) -> Response:
        body = LATIN1.encode("iso-8859-1")
        headers = {"Content-Type": "text/plain; charset=iso-8859-1"}
        return counted(Response(body, headers=headers), request)

    async def pdf(request: Request) -> Response:
        return counted(Response(b"%PDF-1.7\n%binary", media_type="application/pdf"), request)

    async def blob(request: Request) -> Response:
        return counted(Response(bytes(range(256)), media_type="application/octet-stream"), request)

    async def huge(request: Request) -> Response:
        return counted(PlainTextResponse("x" * HUGE_SIZE), request)

    async def slow(request: Request) -> Response:
        async def trickle() -> AsyncIterator[bytes]:
            yield b"<html><body><p>"
            for _ in range(600):
                await asyncio.sleep(0.05)
                yield b"."

        return counted(StreamingResponse(trickle(), media_type="text/html"), request)

    async def cut(request: Request) -> Response:
        async def ten_bytes() -> AsyncIterator[bytes]:
            yield b"0123456789"

        headers = {"Content-Length": "1000"}
        response = StreamingResponse(ten_bytes(), headers=headers, media_type="text/plain")
        return counted(response, request)

    async def missing(request: Request) -> Response:
        return counted(PlainTextResponse("no such page", status_code=404), request)

    async def broken(request: Request) -> Response:
        return counted(PlainTextResponse("it broke", status_code=500), request)

    async def redirect(request: Request) -> Response:
        return counted(RedirectResponse(request.query_params["to"], status_code=302), request)

    async def loop(request: Request) -> Response:
        return counted(RedirectResponse("/loop", status_code=302), request)

    routes = [
        Route("/article", article),
        Route("/plain", plain),
        Route("/notes.md", notes),
        Route("/data.json", data),
        Route("/latin1", latin1),
        Route("/report.pdf", pdf),
        Route("/blob", blob),
        Route("/huge", huge),
        Route("/slow", slow),
        Route("/cut", cut),
        Route("/missing", missing),
        Route("/broken", broken),
        Route("/redirect", redirect),
        Route("/loop", loop),
    ]
    return Starlette(routes=routes), state
