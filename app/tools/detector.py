"""Tools for models without function calling: decide from the user's message which tool applies
and with what arguments, by patterns, or by asking the model a short classification question.

Patterns are deliberately narrow: a wrong tool run costs a second or two and confuses a small
model, a missed one only leaves the model to answer alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson

_TRAILER = re.compile(
    r"(?:\s+(?:right now|now|today|tonight|tomorrow|currently|please|this week))+$", re.I
)
_URL = re.compile(r"https?://[^\s<>()\"']+", re.I)
_CODE = re.compile(r"```(?:python|py)?\s*\n(?P<code>.*?)```", re.S | re.I)
_MATH = re.compile(r"^[\d\s.,+\-*/^()%]*\d[\d\s.,+\-*/^()%]*$")
_FUNCTIONS = r"(?:sqrt|log|ln|sin|cos|tan|exp|factorial|abs|round)"


@dataclass(frozen=True, slots=True)
class Detected:
    name: str
    arguments: dict[str, Any]


def _place(text: str) -> str:
    return _TRAILER.sub("", text.strip(" \t?.!,;:")).strip(" \t?.!,;:")


def _weather(text: str) -> dict[str, Any] | None:
    match = re.search(
        r"\b(?:weather|forecast|temperature|raining|snowing|sunny)\b.*?\b(?:in|for|at)\s+(.+)$",
        text,
        re.I,
    )
    if match and (place := _place(match.group(1))):
        return {"location": place}
    return None


def _time(text: str) -> dict[str, Any] | None:
    if not re.search(r"\b(?:time|date|day)\b", text, re.I):
        return None
    match = re.search(
        r"\b(?:what(?:'s| is)? (?:the )?(?:current |local )?(?:time|date|day)(?: is it)?"
        r"|current time|local time|time|date)\b.*?\bin\s+(.+)$",
        text,
        re.I,
    )
    if match and (place := _place(match.group(1))):
        return {"zone": place}
    if re.search(r"\bwhat(?:'s| is)? (?:the )?(?:time|date)\b|\bwhat time is it\b", text, re.I):
        return {"zone": "UTC"}
    return None


def _calculator(text: str) -> dict[str, Any] | None:
    percent = re.search(r"(\d[\d,.]*\s*%\s*of\s*\d[\d,.]*)", text, re.I)
    if percent:
        return {"expression": percent.group(1).replace(",", "")}
    named = re.search(r"\b(factorial|square root|cube root) of (\d[\d.]*)", text, re.I)
    if named:
        function = {"factorial": "factorial", "square root": "sqrt", "cube root": "cbrt"}
        return {"expression": f"{function[named.group(1).lower()]}({named.group(2)})"}
    match = re.search(
        r"^(?:what(?:'s| is)|calculate|compute|evaluate|how much is)\s+(.+?)[?.!]*$",
        text.strip(),
        re.I,
    )
    candidate = match.group(1) if match else text.strip().rstrip("?=")
    candidate = candidate.strip()
    is_math = _MATH.match(candidate) and re.search(r"\d\s*[-+*/^%]\s*[\d(]", candidate)
    is_call = re.fullmatch(rf"{_FUNCTIONS}\s*\(.+\)", candidate, re.I)
    if is_math or is_call:
        return {"expression": candidate}
    return None


def _wikipedia(text: str) -> dict[str, Any] | None:
    if not re.search(r"\bwikipedia\b", text, re.I):
        return None
    match = re.search(
        r"\b(?:about|on|for|of)\s+(.+?)(?:\s+(?:on|from|in|according to) wikipedia)?[?.!]*$",
        text,
        re.I,
    ) or re.search(r"wikipedia\s*[:,-]?\s*(.+?)[?.!]*$", text, re.I)
    if match and (topic := _place(match.group(1))) and topic.lower() != "wikipedia":
        return {"query": topic}
    return None


def _web_search(text: str) -> dict[str, Any] | None:
    match = re.search(
        r"^(?:please\s+)?(?:search(?: the web| online| the internet)?(?: for)?|google|look up"
        r"|find (?:information|news|articles) (?:about|on))\s+(.+?)[?.!]*$",
        text.strip(),
        re.I,
    ) or re.search(r"\b(?:latest|recent) news (?:about|on)\s+(.+?)[?.!]*$", text, re.I)
    if match and (query := match.group(1).strip()):
        return {"query": query}
    return None


def _fetch_url(text: str) -> dict[str, Any] | None:
    url = _URL.search(text)
    if url and re.search(
        r"\b(?:summari[sz]e|read|fetch|open|tl;?dr|what does|says?)\b", text, re.I
    ):
        return {"url": url.group(0).rstrip(".,;:!?")}
    return None


def _python(text: str) -> dict[str, Any] | None:
    code = _CODE.search(text)
    if code and re.search(r"\b(?:run|execute|output|result|print)\b", text, re.I):
        return {"code": code.group("code")}
    return None


def _system_info(text: str) -> dict[str, Any] | None:
    pattern = (
        r"\b(?:system info\w*|cpu usage|memory usage|disk (?:usage|space)|uptime|load average)\b"
    )
    return {} if re.search(pattern, text, re.I) else None


_PATTERNS: list[tuple[str, Callable[[str], dict[str, Any] | None]]] = [
    ("python", _python),
    ("fetch_url", _fetch_url),
    ("weather", _weather),
    ("time", _time),
    ("wikipedia", _wikipedia),
    ("web_search", _web_search),
    ("system_info", _system_info),
    ("calculator", _calculator),
]


def detect(text: str, enabled: Collection[str]) -> Detected | None:
    """The first enabled tool whose pattern matches `text`, with its arguments."""
    text = text.strip()
    if not text or len(text) > 2000:
        return None
    for name, match in _PATTERNS:
        if name in enabled and (arguments := match(text)) is not None:
            return Detected(name, arguments)
    return None


def classification_prompt(tools: list[dict[str, Any]]) -> str:
    """The system prompt asking a model to pick a tool, for TOOL_DETECTION=model."""
    lines = [
        "Decide whether one of these tools is needed to answer the user's message.",
        "Tools:",
    ]
    for tool in tools:
        function = tool["function"]
        params = orjson.dumps(function["parameters"].get("properties", {})).decode()
        lines.append(f"- {function['name']}: {function['description']} Arguments: {params}")
    lines.append(
        'Reply with JSON only: {"tool": "<name>", "arguments": {...}} to use a tool, '
        'or {"tool": null} when none is needed.'
    )
    return "\n".join(lines)


def parse_classification(text: str, enabled: Collection[str]) -> Detected | None:
    """The model's pick, if its reply holds a JSON object naming an enabled tool."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        picked = orjson.loads(text[start : end + 1])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(picked, dict) or picked.get("tool") not in enabled:
        return None
    arguments = picked.get("arguments")
    return Detected(str(picked["tool"]), arguments if isinstance(arguments, dict) else {})
