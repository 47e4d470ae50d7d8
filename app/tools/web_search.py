"""`web_search`: DuckDuckGo and the other engines of the `ddgs` metasearch package.

ddgs is synchronous, so each search runs in a worker thread (as pydantic-ai's DuckDuckGo tool
does) and the event loop stays free.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Protocol

import anyio.to_thread
from ddgs import DDGS
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
from pydantic import Field

from app.errors import InvalidRequest, ToolError
from app.tools.context import Register, ToolContext

MAX_RESULTS = 20
_NO_RESULTS = "No results found."


class SearchClient(Protocol):
    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]: ...


class WebSearch:
    """Searches through a fresh client from `client_factory` per call (ddgs' `DDGS` by default),
    with `backend` picking the engines ("auto": ddgs' choice)."""

    def __init__(self, backend: str, client_factory: Callable[[], SearchClient] = DDGS) -> None:
        self._backend = backend
        self._client_factory = client_factory

    async def search(self, query: str, max_results: int) -> list[dict[str, str]]:
        """Up to `max_results` results as {title, url, snippet}."""
        query = query.strip()
        if not query:
            raise InvalidRequest("web_search needs a query to search for", param="query")
        run = partial(self._search, query, max_results)
        try:
            found = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        except RatelimitException:
            raise ToolError("web search is rate limited by its engines; try again later") from None
        except TimeoutException as exc:
            raise ToolError(f"web search timed out: {exc}") from None
        except DDGSException as exc:
            if str(exc) == _NO_RESULTS:
                raise ToolError(f"web search found no results for {query!r}") from None
            raise ToolError(f"web search is unavailable: {exc}") from None
        return [
            {
                "title": str(item.get("title", "")),
                "url": str(item.get("href", "")),
                "snippet": str(item.get("body", "")),
            }
            for item in found[:max_results]
        ]

    def _search(self, query: str, max_results: int) -> list[dict[str, Any]]:
        client = self._client_factory()
        return client.text(query, max_results=max_results, backend=self._backend)


def register_tools(
    register: Register, context: ToolContext, client_factory: Callable[[], SearchClient] = DDGS
) -> None:
    searcher = WebSearch(context.settings.search_backend, client_factory)
    default_results = min(context.settings.search_max_results, MAX_RESULTS)

    async def web_search(
        query: str, max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = default_results
    ) -> list[dict[str, str]]:
        """Search the web. Returns the top results, each with a title, url and snippet; use
        fetch_url to read a page in full.

        Args:
            query: what to look for, as you would type it into a search engine.
            max_results: how many results to return, 1 to 20.
        """
        return await searcher.search(query, max_results)

    register(web_search)
