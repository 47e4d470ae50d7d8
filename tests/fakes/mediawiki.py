"""A fake MediaWiki speaking the subset of the action API the `wikipedia` tool uses
(`action=query` with `list=search`, and `prop=extracts|info` with `redirects`), in
`formatversion=2` JSON.

Serve it with `tests.fakes.serve.serve(FakeMediaWiki().app)` and point WIKIPEDIA_API_URL at
`{url}/{language}/w/api.php`. Every request's query parameters are kept in `requests` (with the
path's `language`). `status` other than 200 makes every answer fail with it; `extracts=False`
plays a wiki without the TextExtracts extension; `api_error` answers 200 with a MediaWiki error.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

ARTICLES = {
    "en": {
        "Ada Lovelace": "Augusta Ada King, Countess of Lovelace, was an English mathematician "
        "and writer, chiefly known for her work on Charles Babbage's Analytical Engine.",
        "Analytical Engine": "The Analytical Engine was a proposed digital mechanical "
        "general-purpose computer designed by Charles Babbage. Ada Lovelace wrote programs "
        "for it.",
        "Charles Babbage": "Charles Babbage was an English mathematician and mechanical "
        "engineer who originated the concept of a digital programmable computer.",
        "Paris": "Paris is the capital and largest city of France.",
    },
    "de": {"Berlin": "Berlin ist die Hauptstadt der Bundesrepublik Deutschland."},
}
REDIRECTS = {"Lovelace": "Ada Lovelace", "Countess of Lovelace": "Ada Lovelace"}


class FakeMediaWiki:
    def __init__(self, *, extracts: bool = True) -> None:
        self.extracts = extracts
        self.status = 200
        self.api_error: str | None = None
        self.requests: list[dict[str, str]] = []
        self.app = Starlette(routes=[Route("/{language}/w/api.php", self.api)])

    async def api(self, request: Request) -> Response:
        params = {**request.query_params, "language": request.path_params["language"]}
        self.requests.append(params)
        if self.status != 200:
            return PlainTextResponse("MediaWiki internal error", status_code=self.status)
        if self.api_error:
            return JSONResponse({"error": {"code": "internal", "info": self.api_error}})
        if params.get("action") != "query" or params.get("format") != "json":
            return JSONResponse({"error": {"code": "badparams", "info": "unsupported request"}})
        articles = ARTICLES.get(params["language"], {})
        if params.get("list") == "search":
            return JSONResponse(_search(articles, params.get("srsearch", "")))
        return JSONResponse(self._pages(request, articles, params))

    def _pages(
        self, request: Request, articles: dict[str, str], params: dict[str, str]
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}
        pages = []
        for title in params.get("titles", "").split("|"):
            target = REDIRECTS.get(title, title) if "redirects" in params else title
            if target != title:
                found.setdefault("redirects", []).append({"from": title, "to": target})
            if target not in articles:
                pages.append({"ns": 0, "title": target, "missing": True})
                continue
            url = f"{request.base_url}{params['language']}/wiki/{target.replace(' ', '_')}"
            page: dict[str, Any] = {"pageid": len(target), "ns": 0, "title": target}
            page |= {"fullurl": url, "canonicalurl": url}
            if self.extracts:
                page["extract"] = articles[target]
            pages.append(page)
        found["pages"] = pages
        answer: dict[str, Any] = {"batchcomplete": True, "query": found}
        if not self.extracts:
            unknown = 'Unrecognized value for parameter "prop": extracts.'
            answer["warnings"] = {"main": {"warnings": unknown}}
        return answer


def _search(articles: dict[str, str], query: str) -> dict[str, Any]:
    """Titles whose page (an article, or a redirect by its title) holds every word of the
    query, those matching by title first, as MediaWiki's database search does."""
    words = query.lower().split()
    pages = articles | {source: "" for source, target in REDIRECTS.items() if target in articles}
    ranked = sorted(
        (title for title, text in pages.items() if _matches(words, f"{title} {text}")),
        key=lambda title: not _matches(words, title),
    )
    hits = [
        {"ns": 0, "title": title, "pageid": len(title), "snippet": _snippet(pages[title], words)}
        for title in ranked
    ]
    return {
        "batchcomplete": True,
        "query": {"searchinfo": {"totalhits": len(hits)}, "search": hits},
    }


def _matches(words: list[str], text: str) -> bool:
    return bool(words) and all(word in text.lower() for word in words)


def _snippet(text: str, words: list[str]) -> str:
    pattern = re.compile("|".join(re.escape(word) for word in words), re.IGNORECASE)
    marked = pattern.sub(lambda m: f'<span class="searchmatch">{m.group(0)}</span>', text)
    return marked.replace("'", "&#039;")
