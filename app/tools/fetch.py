"""`fetch_url` reads a web page's main text; `search_and_fetch` searches and reads the top pages.

Pages are fetched through the SSRF guard (`app.security.ssrf`), within FETCH_TIMEOUT for the
whole fetch, redirects included, and reading at most FETCH_MAX_BYTES of body. HTML goes through
trafilatura, which drops menus, ads and boilerplate; text and JSON are returned as they are.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import aiohttp
import anyio.to_thread
import trafilatura
from aiohttp.abc import AbstractResolver
from ddgs import DDGS
from pydantic import Field
from trafilatura.settings import Document
from yarl import URL

from app.config import ToolSettings
from app.errors import GatewayError, InvalidRequest, ToolError
from app.security.ssrf import AddressPolicy, GuardedClient
from app.tools.context import USER_AGENT, Register, ToolContext
from app.tools.web_search import SearchClient, WebSearch

MAX_PAGES = 5
_HTML = frozenset({"text/html", "application/xhtml+xml"})
_ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.1"
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Download:
    url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes
    cut: bool


class Fetcher:
    """Fetches pages for the tools; `resolver` replaces getaddrinfo (its answers are still
    vetted)."""

    def __init__(
        self,
        settings: ToolSettings,
        connect_timeout: float,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.max_chars = settings.fetch_max_chars
        self._timeout = settings.fetch_timeout
        self._max_bytes = settings.fetch_max_bytes
        self._client = GuardedClient(
            AddressPolicy(settings.fetch_allowed_networks),
            timeout=aiohttp.ClientTimeout(connect=connect_timeout),
            headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT},
            max_redirects=settings.fetch_max_redirects,
            resolver=resolver,
        )

    async def fetch(self, url: str, max_chars: int | None = None) -> dict[str, Any]:
        """{url (after redirects), status, content_type, title, text, truncated}, with a note
        saying what was cut when `truncated`; text is cut at `max_chars` (FETCH_MAX_CHARS)."""
        try:
            target = URL(url.strip())
        except (TypeError, ValueError):
            raise InvalidRequest(f"{url!r} is not a URL", param="url") from None
        try:
            async with asyncio.timeout(self._timeout):
                download = await self._download(target)
        except TimeoutError:
            raise ToolError(f"{url} did not load within {self._timeout:g}s") from None
        return await _render(download, max_chars or self.max_chars)

    async def _download(self, url: URL) -> _Download:
        try:
            async with self._client.get(url) as resp:
                if resp.status >= 400:
                    status = f"{resp.status} {resp.reason or ''}".rstrip()
                    raise ToolError(f"{resp.url} answered HTTP {status}")
                kind = resp.content_type
                if kind not in _HTML and not _is_text(kind):
                    raise InvalidRequest(
                        f"fetch_url reads HTML, text and JSON, and {resp.url} is {kind}",
                        param="url",
                    )
                body, cut = await _read(resp.content, self._max_bytes)
                return _Download(str(resp.url), resp.status, kind, resp.charset, body, cut)
        except aiohttp.ClientConnectorError as exc:
            raise ToolError(f"could not reach {exc.host}: {_reason(exc.os_error)}") from None
        except aiohttp.InvalidURL as exc:
            raise InvalidRequest(
                f"{exc.url} is not a URL that can be fetched", param="url"
            ) from None
        except aiohttp.ClientError as exc:
            raise ToolError(f"fetching {url} failed: {str(exc) or type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self._client.aclose()


def _is_text(content_type: str) -> bool:
    return (
        content_type.startswith("text/")
        or content_type == "application/json"
        or content_type.endswith("+json")
    )


def _reason(error: OSError) -> str:
    # asyncio words every failed connect as "Connect call failed (address)"; the errno says why.
    # TLS errors carry OpenSSL's codes there instead, and DNS errors negative ones.
    if error.errno is not None and error.errno > 0 and not isinstance(error, ssl.SSLError):
        return os.strerror(error.errno)
    return error.strerror or str(error) or type(error).__name__


async def _read(content: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """The body up to `limit` bytes, and whether there was more (which is left unread)."""
    body = bytearray()
    async for chunk in content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


async def _render(download: _Download, max_chars: int) -> dict[str, Any]:
    title: str | None = None
    if download.content_type in _HTML:
        # Without a charset in the headers trafilatura finds it in the page itself.
        content = _decode(download.body, download.charset) if download.charset else download.body
        extract = partial(_extract, content, download.url)
        title, text = await anyio.to_thread.run_sync(extract, abandon_on_cancel=True)
    else:
        text = _decode(download.body, download.charset)
    notes = []
    if download.cut:
        notes.append("the page is longer than FETCH_MAX_BYTES; only its start was read")
    if len(text) > max_chars:
        text = text[:max_chars]
        notes.append(f"the text was cut at {max_chars} characters")
    page: dict[str, Any] = {
        "url": download.url,
        "status": download.status,
        "content_type": download.content_type,
        "title": title,
        "text": text,
        "truncated": bool(notes),
    }
    if notes:
        page["note"] = "; ".join(notes)
    return page


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _extract(content: str | bytes, url: str) -> tuple[str | None, str]:
    """The page's title and main text; the whole page's text when no main part stands out."""
    document = trafilatura.bare_extraction(
        content, url=url, with_metadata=True, include_comments=False
    )
    if not isinstance(document, Document):
        return None, trafilatura.html2txt(content)
    return document.title, document.text or trafilatura.html2txt(content)


async def search_pages(
    search: WebSearch, fetcher: Fetcher, query: str, max_pages: int
) -> list[dict[str, Any]]:
    """The top `max_pages` results of `query`, each fetched at once with its share of
    FETCH_MAX_CHARS; a page that fails keeps its snippet and gets an `error` instead of text."""
    results = await search.search(query, max_pages)
    if not results:
        return []
    share = fetcher.max_chars // len(results)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_read_result(fetcher, result, share)) for result in results]
    return [task.result() for task in tasks]


async def _read_result(fetcher: Fetcher, result: dict[str, str], max_chars: int) -> dict[str, Any]:
    try:
        page = await fetcher.fetch(result["url"], max_chars)
    except GatewayError as exc:
        return {**result, "error": exc.message}
    read: dict[str, Any] = {**result, "url": page["url"], "text": page["text"]}
    if page["truncated"]:
        read["note"] = page["note"]
    return read


def register_tools(
    register: Register, context: ToolContext, client_factory: Callable[[], SearchClient] = DDGS
) -> None:
    fetcher = Fetcher(context.settings, context.connect_timeout)
    searcher = WebSearch(context.settings.search_backend, client_factory)
    context.closers.append(fetcher.aclose)

    async def fetch_url(url: str) -> dict[str, Any]:
        """Read a web page: returns its title and main text (menus and ads left out), or the
        text of a plain-text, Markdown or JSON document.

        Args:
            url: the page's http:// or https:// address.
        """
        return await fetcher.fetch(url)

    async def search_and_fetch(
        query: str, max_pages: Annotated[int, Field(ge=1, le=MAX_PAGES)] = 3
    ) -> list[dict[str, Any]]:
        """Search the web and read the top pages at once: each result's title, url and snippet
        with the page's main text, or an error when that page could not be read.

        Args:
            query: what to look for, as you would type it into a search engine.
            max_pages: how many of the top results to read, 1 to 5.
        """
        return await search_pages(searcher, fetcher, query, max_pages)

    register(fetch_url)
    register(search_and_fetch)
