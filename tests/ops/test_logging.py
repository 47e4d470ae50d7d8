"""The log: a real gateway (`python -m app serve`) writes JSON lines (LOG_FORMAT=json, or auto
on a pipe) or human lines, with the request id of each request, an access line with its model
and tokens, and no key or message text unless LOG_CONTENT asks for the text; and
`setup_logging` itself: the standard library's records (uvicorn's among them) go through loguru
from their caller, coloured human lines only on a terminal, exceptions as one field, levels,
libraries' own console handlers adopted, keys masked."""

from __future__ import annotations

import io
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from loguru import logger

from app.config import load_settings
from app.ops.logging import adopt_library_loggers, redact, setup_logging
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import free_port
from tests.test_cli import child_env, started

if TYPE_CHECKING:
    from loguru import Record

KEY = "gk-test-SECRET-key"
WRONG_KEY = "gk-wrong-SECRET-key"
UPSTREAM_KEY = "sk-upstream-SECRET-key"
TEXT = "my SECRET message"
FIELDS = ["time", "level", "logger", "message", "request_id"]
ACCESS = ["method", "path", "status", "duration_ms", "model", "input_tokens", "output_tokens"]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HUMAN = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+ \[\S+\] "
)


class Gateway:
    """A gateway child process's URL and the file its stdout and stderr go to."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def chat(self, model: str, key: str = KEY, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": TEXT}]},
            headers={"Authorization": f"Bearer {key}", **headers},
            timeout=30,
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text().splitlines()]

    def wait_for(self, rid: str, logger_name: str) -> dict[str, Any]:
        """The JSON line of `logger_name` for request `rid`, once written (after the response)."""
        for _ in range(250):
            for line in self.lines():
                if line["logger"] == logger_name and line["request_id"] == rid:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no {logger_name} line for {rid}:\n{self.text()}")

    def access(self, resp: httpx.Response) -> dict[str, Any]:
        return self.wait_for(resp.headers["x-request-id"], "app.access")


@contextmanager
def gateway(upstream: str, redis_url: str, log: Path, **settings: str) -> Iterator[Gateway]:
    """A gateway child wired to the fake upstream, keys required, without the knowledge layer
    (which would load the embedder) or tools."""
    port = free_port()
    env = child_env(
        PORT=str(port),
        OPENAI_BASE_URL=f"{upstream}/v1",
        OPENAI_API_KEY=UPSTREAM_KEY,
        API_KEYS=KEY,
        REDIS_URL=redis_url,
        RAG_ENABLED="false",
        MEMORY_ENABLED="false",
        ENABLED_TOOLS="none",
        RETRY_BACKOFF="0.01",
        RETRY_BACKOFF_MAX="0.05",
        **settings,
    )
    with started(env, log, port) as (_, url):
        yield Gateway(url, log)


@pytest.fixture(scope="module")
def json_gateway(
    openai_server: tuple[str, OpenAIUpstreamState], redis_url: str, tmp_path_factory: Any
) -> Iterator[Gateway]:
    log = tmp_path_factory.mktemp("json") / "gateway.log"
    # a zone far from UTC: the lines' time must still be UTC's
    with gateway(openai_server[0], redis_url, log, LOG_FORMAT="json", TZ="Asia/Kolkata") as running:
        yield running


def test_every_line_is_a_json_object_with_the_stable_fields(json_gateway: Gateway) -> None:
    json_gateway.access(json_gateway.chat("openai/gpt-test"))
    lines = json_gateway.lines()
    now = datetime.now(UTC)
    for line in lines:
        assert list(line)[:5] == FIELDS, line
        assert ISO_UTC.match(line["time"]), line
        assert abs(datetime.fromisoformat(line["time"]) - now) < timedelta(minutes=5)
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    said = {(line["logger"], line["message"]) for line in lines}
    assert ("uvicorn.error", "Application startup complete.") in said  # uvicorn's own logger
    assert ("app.services", "tools enabled: none") in said  # a module's logging.getLogger
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]


def test_a_chat_has_its_access_line_with_model_and_tokens(json_gateway: Gateway) -> None:
    resp = json_gateway.chat("openai/gpt-test", **{"X-Request-ID": "trace-chat-1"})
    assert resp.status_code == 200, resp.text
    line = json_gateway.access(resp)
    usage = resp.json()["usage"]
    assert line["request_id"] == "trace-chat-1"
    assert {k: line[k] for k in ACCESS if k != "duration_ms"} == {
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "model": "openai/gpt-test",
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
    }
    assert isinstance(line["duration_ms"], float)
    assert 0 < line["duration_ms"] < 30_000
    assert line["message"].startswith("POST /v1/chat/completions 200 ")


def test_a_streamed_chat_has_its_tokens_too(json_gateway: Gateway) -> None:
    resp = httpx.post(
        f"{json_gateway.url}/v1/chat/completions",
        json={
            "model": "openai/gpt-test",
            "stream": True,
            "messages": [{"role": "user", "content": TEXT}],
        },
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert resp.status_code == 200
    line = json_gateway.access(resp)
    assert line["model"] == "openai/gpt-test"
    assert line["input_tokens"] > 0
    assert line["output_tokens"] > 0


@pytest.mark.parametrize(
    ("model", "key", "status", "reason"),
    [
        ("openai/gpt-test", WRONG_KEY, 401, "Invalid API key."),
        ("openai/nope", KEY, 404, "model 'nope' not found"),
        ("openai/error-500", KEY, 502, ""),
    ],
    ids=["401", "404", "502"],
)
def test_a_failure_has_its_access_line_without_model_or_tokens(
    json_gateway: Gateway, model: str, key: str, status: int, reason: str
) -> None:
    resp = json_gateway.chat(model, key)
    assert resp.status_code == status, resp.text
    line = json_gateway.access(resp)
    assert line["request_id"] == resp.headers["x-request-id"]
    assert len(line["request_id"]) == 32  # made by the gateway
    assert (line["status"], line["model"], line["input_tokens"], line["output_tokens"]) == (
        status,
        None,
        None,
        None,
    )
    assert reason in line["message"]


def test_no_key_authorization_or_message_text_is_ever_written(json_gateway: Gateway) -> None:
    for model, key in [("openai/gpt-test", KEY), ("openai/gpt-test", WRONG_KEY)]:
        json_gateway.access(json_gateway.chat(model, key))
    json_gateway.access(json_gateway.chat("openai/error-500"))
    text = json_gateway.text()
    assert "app.access" in text
    for secret in ("SECRET", "Bearer", KEY, WRONG_KEY, UPSTREAM_KEY, TEXT):
        assert secret not in text


def test_with_log_content_the_message_and_the_answer_are_written_at_debug(
    openai_server: tuple[str, OpenAIUpstreamState], redis_url: str, tmp_path: Path
) -> None:
    """LOG_FORMAT=auto on a pipe is JSON; the keys stay masked."""
    settings = {"LOG_FORMAT": "auto", "LOG_CONTENT": "true", "LOG_LEVEL": "DEBUG"}
    with gateway(openai_server[0], redis_url, tmp_path / "gateway.log", **settings) as running:
        resp = running.chat("openai/gpt-test")
        answer = resp.json()["choices"][0]["message"]["content"]
        line = running.wait_for(resp.headers["x-request-id"], "app.content")
        assert running.access(resp)["status"] == 200
        text = running.text()
    assert line["level"] == "DEBUG"
    assert line["message"] == f'user: "{TEXT}" answer: "{answer}"'
    for secret in (KEY, UPSTREAM_KEY, "Bearer"):
        assert secret not in text


def test_human_lines_on_a_pipe_are_plain(
    openai_server: tuple[str, OpenAIUpstreamState], redis_url: str, tmp_path: Path
) -> None:
    with gateway(openai_server[0], redis_url, tmp_path / "gateway.log", LOG_FORMAT="human") as gw:
        resp = gw.chat("openai/gpt-test")
        rid = resp.headers["x-request-id"]
        for _ in range(250):
            if f"[{rid}]" in gw.text():
                break
            time.sleep(0.02)
        lines = gw.text().splitlines()
    usage = resp.json()["usage"]
    assert [line for line in lines if not HUMAN.match(line)] == []
    assert "\x1b[" not in "".join(lines)
    (access,) = [line for line in lines if f"[{rid}]" in line]
    assert " ✅ INFO    app.access " in access
    assert "POST /v1/chat/completions 200 " in access
    tokens = f"openai/gpt-test {usage['prompt_tokens']}→{usage['completion_tokens']} tokens"
    assert access.endswith(tokens)
    startup = " 🦄 INFO    uvicorn.error [-] Application startup complete."
    assert any(startup in line for line in lines)


# --- setup_logging in this process --------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logs() -> Iterator[None]:
    """Whatever `setup_logging` changes is put back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    touched = ["uvicorn", "uvicorn.error", "uvicorn.access", "httpx"]
    saved = {
        name: (lg.handlers[:], lg.propagate, lg.disabled, lg.level)
        for name in touched
        for lg in [logging.getLogger(name)]
    }
    try:
        yield
    finally:
        logger.remove()
        logger.add(sys.stderr)
        logging.captureWarnings(False)
        root.handlers[:], root.level = handlers, level
        for name, (hs, propagate, disabled, lvl) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.propagate, lg.disabled, lg.level = hs, propagate, disabled, lvl


def setup(stream: io.StringIO, **settings: Any) -> None:
    setup_logging(load_settings(_env_file=None, **settings).server, stream)


@pytest.mark.usefixtures("logs")
def test_a_stdlib_record_goes_through_loguru_from_its_caller() -> None:
    out = io.StringIO()
    setup(out, log_format="json")
    seen: list[Record] = []
    logger.add(lambda message: seen.append(message.record), format="{message}")
    logging.getLogger("app.example").warning("%d apples", 3)
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    (mine, uvicorn) = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert (mine["logger"], mine["level"], mine["message"]) == (
        "app.example",
        "WARNING",
        "3 apples",
    )
    assert (uvicorn["logger"], uvicorn["message"]) == (
        "uvicorn.error",
        "Started server process [1]",
    )
    assert seen[0]["function"] == "test_a_stdlib_record_goes_through_loguru_from_its_caller"
    assert seen[0]["name"] == __name__
    assert seen[0]["level"].name == "WARNING"


@pytest.mark.usefixtures("logs")
def test_log_level_is_honoured_and_a_disabled_level_stops_at_the_logger() -> None:
    out = io.StringIO()
    setup(out, log_format="json", log_level="WARNING")
    example = logging.getLogger("app.example")
    assert not example.isEnabledFor(logging.INFO)
    example.info("not shown")
    logger.info("not shown either")
    example.warning("shown")
    assert [orjson.loads(line)["message"] for line in out.getvalue().splitlines()] == ["shown"]


@pytest.mark.usefixtures("logs")
def test_an_exception_is_one_field_of_one_line() -> None:
    out = io.StringIO()
    setup(out, log_format="json")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("app.example").exception("it broke")
    (line,) = out.getvalue().splitlines()
    record = orjson.loads(line)
    assert record["message"] == "it broke"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].endswith("ZeroDivisionError: division by zero")


@pytest.mark.usefixtures("logs")
def test_human_lines_are_coloured_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for stream, coloured in ((io.StringIO(), False), (Terminal(), True)):
        setup(stream, log_format="human")
        logging.getLogger("app.example").warning("careful")
        line = stream.getvalue()
        assert ("\x1b[" in line) is coloured
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
        assert HUMAN.match(plain)
        assert plain.endswith(" ⚠️ WARNING app.example [-] careful\n")
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    setup(terminal, log_format="auto")
    logging.getLogger("app.example").info("plain")
    assert HUMAN.match(terminal.getvalue())
    assert "\x1b[" not in terminal.getvalue()


@pytest.mark.usefixtures("logs")
def test_a_librarys_own_console_handler_is_adopted() -> None:
    library = logging.getLogger("some_library")
    library.addHandler(logging.StreamHandler(sys.stderr))
    library.propagate = False
    out = io.StringIO()
    try:
        setup(out, log_format="json")
        library.warning("from the library")
        adopt_library_loggers()  # idempotent, as the lifespan calls it again
        assert library.handlers == []
        assert library.propagate
        assert orjson.loads(out.getvalue())["logger"] == "some_library"
    finally:
        library.handlers.clear()
        library.propagate = True


@pytest.mark.usefixtures("logs")
def test_every_line_is_masked() -> None:
    out = io.StringIO()
    setup(out, log_format="json")
    logging.getLogger("app.example").info("headers %s", {"Authorization": "Bearer gk-abcdef"})
    line = orjson.loads(out.getvalue())
    assert line["message"] == "headers {'Authorization': '***'}"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key gk-AbC_123-xyz used", "key gk-*** used"),
        ("OPENAI_API_KEY=sk-proj-abc123", "OPENAI_API_KEY=***"),
        ("sent sk-ant-api03-xyz", "sent sk-***"),
        ("Authorization: Bearer abc.def", "Authorization: ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: ***"),
        ("Authorization=Token abc123", "Authorization=***"),
        ("AUTHORIZATION: xyz", "AUTHORIZATION: ***"),
        ("the basic plan", "the basic plan"),
        ('{"x-api-key": "k-123"}', '{"x-api-key": "***"}'),
        ('{\\"x-api-key\\": \\"k-123\\"}', '{\\"x-api-key\\": \\"***\\"}'),
        ("token bearer abc123 here", "token bearer *** here"),
        ("Invalid API key.", "Invalid API key."),
        ("a risk-free desk-lamp", "a risk-free desk-lamp"),
    ],
)
def test_redact(text: str, masked: str) -> None:
    assert redact(text) == masked
