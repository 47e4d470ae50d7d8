"""The gateway's log: every record, the standard library's (the app's own modules, uvicorn,
httpx, Chroma, sentence-transformers, llama.cpp through its callback) and loguru's, leaves
through one loguru sink, as a human line or a JSON line, with the request id of the request
that caused it, and with key-shaped strings masked."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from loguru import logger

from app.config import ServerSettings

if TYPE_CHECKING:
    from loguru import Message, Record

log = logging.getLogger(__name__)
content_log = logging.getLogger("app.content")
"""Users' messages and answers (LOG_CONTENT), at DEBUG."""

CONTENT_CHARS = 500
"""How much of an answer a content line keeps."""
SLOW_MS = 2000.0
"""A request that took longer is marked slow (🐢) on a human line."""

request_id: ContextVar[str] = ContextVar("request_id", default="-")


@dataclass(slots=True)
class Exchange:
    """One request as its access line tells it, filled while it is answered: the middleware
    makes it and writes the line; the turn (`Turn.events`) adds the model that answered and the
    tokens it used. `content` (LOG_CONTENT) asks for the user's message and the answer."""

    method: str
    path: str
    content: bool = False
    status: int = 0
    duration_ms: float = 0.0
    reason: str = ""
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    question: str = ""
    answer: str = ""

    def __str__(self) -> str:
        text = f"{self.method} {self.path} {self.status} {self.duration_ms:.1f}ms"
        if self.model:
            text += f" {self.model}"
        if self.input_tokens is not None:
            text += f" {self.input_tokens}→{self.output_tokens} tokens"
        return f"{text}: {self.reason}" if self.reason else text


exchange: ContextVar[Exchange] = ContextVar("exchange")
"""The request being answered; unset outside one."""


def install_log_context() -> None:
    """Give every log record a `request_id` attribute, whichever handler formats it."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "adds_request_id", False):
        return

    def record_with_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    record_with_id.adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_id)


class InterceptHandler(logging.Handler):
    """The root logger's one handler: each standard-library record goes on to loguru at its own
    level, from its caller's frame, with its logger's name, its request id and (an access line)
    its exchange."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = logging.currentframe()
        depth = 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).bind(
            logger=record.name,
            request_id=getattr(record, "request_id", "-"),
            exchange=getattr(record, "exchange", None),
        ).log(level, record.getMessage())


# --- redaction ---------------------------------------------------------------------------------

_SECRET = re.compile(
    r"(?<![a-z0-9])(?P<name>authorization|x-api-key|api[-_]?key)(?P<sep>[\\\"']*\s*[:=]\s*[\\\"']*)"
    r"(?:(?:bearer|basic|token)\s+)?[^\s\"'\\,;]+"
    r"|\b(?P<scheme>bearer)\s+[^\s\"'\\,;]+"
    r"|\b(?P<prefix>gk|sk)-[\w-]{3,}",
    re.IGNORECASE,
)


def _masked(match: re.Match[str]) -> str:
    if match["name"]:
        return f"{match['name']}{match['sep']}***"
    if match["scheme"]:
        return f"{match['scheme']} ***"
    return f"{match['prefix']}-***"


def redact(text: str) -> str:
    """`text` with API keys (`gk-…`, `sk-…`), Bearer credentials and the values of
    Authorization, x-api-key and api_key fields masked: the last guard of every line's message,
    exception and path. Searched only when a hint of one is there (the search costs 20 times
    as much)."""
    lowered = text.lower()
    if "k-" in lowered or "key" in lowered or "authoriz" in lowered or "bearer" in lowered:
        return _SECRET.sub(_masked, text)
    return text


# --- lines -------------------------------------------------------------------------------------

_LEVEL_MARKS = {"DEBUG": "🐛", "INFO": "💬", "WARNING": "⚠️", "ERROR": "❌", "CRITICAL": "🔥"}
_KIND_MARKS = {"uvicorn": "🦄", "llama.cpp": "🦙", "app.content": "📝"}
_STATUS_MARKS = {2: "✅", 3: "↪️", 4: "⚠️", 5: "💥"}
_LEVEL_COLOURS = {
    "DEBUG": "\x1b[34m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_STATUS_COLOURS = {2: "\x1b[32m", 3: "\x1b[36m", 4: "\x1b[33m", 5: "\x1b[31m"}
_DIM, _CYAN, _RESET = "\x1b[2m", "\x1b[36m", "\x1b[0m"


def _origin(record: Record) -> tuple[str, str, Exchange | None]:
    """The record's logger name, request id and exchange (a record of loguru's own has no
    exchange, and the request id of the context it was made in)."""
    extra = record["extra"]
    rid = extra.get("request_id") or request_id.get()
    return extra.get("logger") or record["name"] or "", rid, extra.get("exchange")


def _exception(record: Record) -> str:
    """The record's traceback, without the values of locals; empty when it has none."""
    error = record["exception"]
    if error is None or error.type is None:  # exc_info=True outside an `except`
        return ""
    trace = traceback.format_exception(error.type, error.value, error.traceback)
    return redact("".join(trace).rstrip())


@functools.lru_cache(maxsize=4)
def _second(second: int, utc: bool) -> str:
    """A second's time, ISO 8601 in UTC or local with a space: made once for all its lines."""
    if utc:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def _stamp(moment: datetime, utc: bool) -> str:
    return f"{_second(int(moment.timestamp()), utc)}.{moment.microsecond // 1000:03d}"


def _mark(level: str, name: str, told: Exchange | None) -> str:
    if told is not None:
        return _STATUS_MARKS.get(told.status // 100, "💥")
    if level in ("DEBUG", "INFO"):
        for prefix, mark in _KIND_MARKS.items():
            if name == prefix or name.startswith(prefix + "."):
                return mark
    return _LEVEL_MARKS.get(level, "•")


def human_line(record: Record, colour: bool) -> str:
    """`2026-12-03 12:27:09.120 ✅ INFO    app.access [id] POST /v1/chat/completions 200
    412.3ms openai/gpt-test 12→34 tokens`: an emoji for the status class (an access line), the
    kind (uvicorn, llama.cpp, content) or the level; coloured when `colour`; a traceback on the
    lines below."""
    name, rid, told = _origin(record)
    level = record["level"].name
    stamp = _stamp(record["time"], utc=False)
    message = redact(record["message"])
    slow = " 🐢" if told is not None and told.duration_ms >= SLOW_MS else ""
    if colour:
        paint = _LEVEL_COLOURS.get(level, "")
        if told is not None:
            message = f"{_STATUS_COLOURS.get(told.status // 100, '')}{message}{_RESET}"
        line = (
            f"{_DIM}{stamp}{_RESET} {_mark(level, name, told)} {paint}{level:<7}{_RESET} "
            f"{_CYAN}{name}{_RESET} {_DIM}[{rid}]{_RESET} {message}{slow}"
        )
    else:
        line = f"{stamp} {_mark(level, name, told)} {level:<7} {name} [{rid}] {message}{slow}"
    if trace := _exception(record):
        line = f"{line}\n{trace}"
    return line


def json_line(record: Record) -> str:
    """One JSON object: time (ISO 8601, UTC), level, logger, message, request_id; an access line
    adds method, path, status, duration_ms, model, input_tokens, output_tokens (null when the
    request had no model turn); a record with an exception adds it as `exception`, one string."""
    name, rid, told = _origin(record)
    line: dict[str, Any] = {
        "time": _stamp(record["time"], utc=True) + "Z",
        "level": record["level"].name,
        "logger": name,
        "message": redact(record["message"]),
        "request_id": None if rid == "-" else rid,
    }
    if told is not None:
        line["method"] = told.method
        line["path"] = redact(told.path)
        line["status"] = told.status
        line["duration_ms"] = round(told.duration_ms, 1)
        line["model"] = told.model or None
        line["input_tokens"] = told.input_tokens
        line["output_tokens"] = told.output_tokens
    if trace := _exception(record):
        line["exception"] = trace
    return orjson.dumps(line).decode()


class _Sink:
    """Writes each record as one line (`form`) to `stream`, in a single write."""

    def __init__(self, stream: TextIO, form: Callable[[Record], str]) -> None:
        self._stream = stream
        self._form = form

    def write(self, message: Message) -> None:
        self._stream.write(self._form(message.record) + "\n")
        self._stream.flush()


# --- setup -------------------------------------------------------------------------------------


def _own_stderr() -> TextIO:
    """A stream on a copy of stderr's descriptor: llama.cpp points descriptor 2 at /dev/null
    while it loads a model (`verbose=False`), and the lines of that moment must still be seen."""
    try:
        fd = os.dup(sys.stderr.fileno())
    except (OSError, ValueError):
        return sys.stderr
    stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    atexit.register(stream.close)
    return stream


def setup_logging(server: ServerSettings, stream: TextIO | None = None) -> None:
    """Send every record through loguru to `stream` (default: stderr) at LOG_LEVEL, as LOG_FORMAT
    says: human lines (coloured on a terminal, unless NO_COLOR is set) or JSON lines. Uvicorn's
    own access log stays off: the gateway writes its own."""
    install_log_context()
    out = stream or _own_stderr()
    tty = out.isatty()
    form = server.log_format if server.log_format != "auto" else ("human" if tty else "json")
    if form == "json":
        line: Callable[[Record], str] = json_line
    else:
        colour = tty and "NO_COLOR" not in os.environ

        def line(record: Record) -> str:
            return human_line(record, colour)

    logger.remove()
    logger.add(
        _Sink(out, line).write,
        level=server.log_level,
        format="{message}",
        colorize=False,
        backtrace=False,
        diagnose=False,
    )
    atexit.register(logger.remove)  # before the stream closes (atexit runs last in first)
    root = logging.getLogger()
    root.handlers[:] = [InterceptHandler(server.log_level)]
    root.setLevel(server.log_level)
    # httpx's line for each request shows its URL, in which a tool's query or a key may be.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn = logging.getLogger(name)
        uvicorn.handlers.clear()
        uvicorn.propagate = True
        uvicorn.setLevel(logging.NOTSET)  # LOG_LEVEL, whatever a uvicorn config said
    logging.getLogger("uvicorn.access").disabled = True
    logging.captureWarnings(True)
    adopt_library_loggers()
    if server.log_content:
        log.warning("LOG_CONTENT is on: users' messages and answers are logged at DEBUG")
        if server.log_level != "DEBUG":
            log.warning("LOG_CONTENT is on, but LOG_LEVEL %s hides what it logs", server.log_level)


def adopt_library_loggers() -> None:
    """Loggers to which a library gave a console handler of its own (transformers,
    huggingface_hub, torch) hand their records to the root logger instead, so that they too go
    through loguru. Once `setup_logging` has run: at setup, and again when the services have
    opened (they import such libraries)."""
    if not any(isinstance(handler, InterceptHandler) for handler in logging.root.handlers):
        return
    consoles = {id(sys.stderr), id(sys.stdout), id(sys.__stderr__), id(sys.__stdout__)}
    for candidate in list(logging.root.manager.loggerDict.values()):
        if not isinstance(candidate, logging.Logger):
            continue
        for handler in list(candidate.handlers):
            if type(handler) is logging.StreamHandler and id(handler.stream) in consoles:
                candidate.removeHandler(handler)
                candidate.propagate = True
