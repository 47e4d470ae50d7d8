"""The `wikipedia` tool: search a MediaWiki (Wikipedia by default) through its action API and
summarise the best-matching article."""

from __future__ import annotations

import html
import re
from typing import Any

from app.errors import InvalidRequest, ToolError
from app.tools.context import Register, ToolContext
from app.tools.http_json import get_json

SERVICE = "Wikipedia"
SEARCH_LIMIT = 5
SUMMARY_MAX_CHARS = 1500
LANGUAGE_CODE = re.compile(r"^[a-z]{2,12}(?:-[a-z0-9]{1,12})*$")
NO_EXTRACTS = (
    "this wiki offers no plain-text extracts (TextExtracts); the summary is a search snippet"
)
_TAG = re.compile(r"<[^>]+>")


def register_tools(register: Register, context: ToolContext) -> None:
    async def wikipedia(query: str, language: str | None = None) -> dict[str, Any]:
        """Search Wikipedia and summarise the best-matching article, with its link and other
        matching titles.

        Args:
            query: what to look up, such as "Ada Lovelace" or "speed of light".
            language: a Wikipedia language code such as "en", "de" or "ja"; omit it for the
                gateway's default.
        """
        return await look_up(context, query, language)

    register(wikipedia)


async def look_up(context: ToolContext, query: str, language: str | None) -> dict[str, Any]:
    query = query.strip()
    if not query:
        raise InvalidRequest("wikipedia: a query is required", param="query")
    code = (language or context.settings.wikipedia_language).strip().lower()
    if not LANGUAGE_CODE.match(code):
        raise InvalidRequest(
            f"wikipedia: '{code}' is not a Wikipedia language code", param="language"
        )
    api = context.settings.wikipedia_api_url.replace("{language}", code)
    hits = await _search(context, api, query)
    if not hits:
        return {
            "query": query,
            "found": False,
            "message": f"Wikipedia ({code}) has no article matching '{query}'.",
            "source": f"Wikipedia: {api}",
        }
    best = hits[0]
    page = await _page(context, api, str(best.get("title", "")))
    url = page.get("fullurl") or page.get("canonicalurl")
    title = page.get("title") or best.get("title")
    result: dict[str, Any] = {
        "query": query,
        "found": True,
        "title": title,
        "summary": _shortened(page.get("extract") or _plain(best.get("snippet"))),
        "url": url,
        "other_results": [hit["title"] for hit in hits[1:] if hit["title"] != title],
        "source": f"Wikipedia: {url or api}",
    }
    if page and "extract" not in page:
        result["note"] = NO_EXTRACTS
    return result


async def _search(context: ToolContext, api: str, query: str) -> list[dict[str, Any]]:
    found = await _query(
        context,
        api,
        {"list": "search", "srsearch": query, "srlimit": SEARCH_LIMIT, "srprop": "snippet"},
    )
    hits = found.get("search") or []
    return [hit for hit in hits if isinstance(hit, dict) and hit.get("title")]


async def _page(context: ToolContext, api: str, title: str) -> dict[str, Any]:
    """The page's title, intro `extract` (absent without TextExtracts) and `fullurl`, after
    redirects."""
    found = await _query(
        context,
        api,
        {
            "prop": "extracts|info",
            "exintro": 1,
            "explaintext": 1,
            "inprop": "url",
            "redirects": 1,
            "titles": title,
        },
    )
    pages = [page for page in found.get("pages") or [] if isinstance(page, dict)]
    present = [page for page in pages if not page.get("missing")]
    return present[0] if present else {}


async def _query(
    context: ToolContext, api: str, params: dict[str, str | int | float]
) -> dict[str, Any]:
    data = await get_json(
        context.http,
        SERVICE,
        api,
        {"action": "query", "format": "json", "formatversion": 2, **params},
    )
    error = data.get("error")
    if isinstance(error, dict):
        raise ToolError(f"{SERVICE} API error: {error.get('info') or error.get('code')}")
    found = data.get("query")
    return found if isinstance(found, dict) else {}


def _plain(snippet: Any) -> str:
    return html.unescape(_TAG.sub("", snippet)) if isinstance(snippet, str) else ""


def _shortened(text: str) -> str:
    text = text.strip()
    if len(text) <= SUMMARY_MAX_CHARS:
        return text
    return text[:SUMMARY_MAX_CHARS].rsplit(" ", 1)[0] + " …"
