"""Real servers on loopback: the fake upstreams and the gateway itself, served by uvicorn."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from app.config import Settings, load_settings
from app.main import create_app
from app.state.redis import redis_server_binary
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import OpenAIUpstreamState, create_openai_upstream
from tests.fakes.serve import serve

for _name in list(os.environ):
    if _name.startswith(("OPENAI_", "OLLAMA_", "LLAMACPP_", "LOCAL_", "REDIS_")) or _name in (
        "API_KEYS",
        "API_KEYS_FILE",
        "ADMIN_API_KEYS",
        "DEFAULT_MODEL",
        "FALLBACK_MODELS",
    ):
        del os.environ[_name]

PERSONA = Path(__file__).resolve().parent.parent / "persona.json"

MakeGateway = Callable[..., str]
DEFAULT_TOOLS = [
    "calculator",
    "python",
    "web_search",
    "wikipedia",
    "fetch_url",
    "search_and_fetch",
    "weather",
    "time",
]
"""The built-in tools enabled by default, in the order they are offered; `system_info` is off."""


def start_redis(directory: Path) -> subprocess.Popen[bytes]:
    """A real redis-server on a unix socket in `directory` (append-only), answering PING."""
    socket = directory / "redis.sock"
    process = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(socket), "--dir",
         str(directory), "--appendonly", "yes", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    client = redis.Redis(unix_socket_path=str(socket))
    deadline = time.monotonic() + 10
    while True:
        try:
            if client.ping():
                break
        except redis.RedisError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test Redis did not start") from None
            time.sleep(0.02)
    client.close()
    return process


def answer_recorded(redis_url: str, message_id: str) -> str:
    """`message_id`, once the gateway has recorded its answer for feedback (just after the
    answer is sent, off its path)."""
    tail = message_id.split("-", 1)[-1].split("_", 1)[-1]
    deadline = time.monotonic() + 5
    with redis.Redis.from_url(redis_url) as client:
        while not client.exists(f"feedback:answer:{tail}"):
            assert time.monotonic() < deadline, f"{message_id} was never recorded"
            time.sleep(0.01)
    return message_id


@pytest.fixture(scope="session", autouse=True)
def redis_url() -> Iterator[str]:
    """One real Redis for the whole run; every gateway and test reaches it through REDIS_URL."""
    with tempfile.TemporaryDirectory(prefix="gateway-test-redis-") as directory:
        process = start_redis(Path(directory))
        url = f"unix://{directory}/redis.sock"
        os.environ["REDIS_URL"] = url
        try:
            yield url
        finally:
            os.environ.pop("REDIS_URL", None)
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="session", autouse=True)
def _data_dir() -> Iterator[None]:
    """An empty DATA_DIR for the run, so no keys file of the checkout's `data/` is read."""
    with tempfile.TemporaryDirectory(prefix="gateway-test-data-") as directory:
        os.environ["DATA_DIR"] = directory
        try:
            yield
        finally:
            os.environ.pop("DATA_DIR", None)


@pytest.fixture(autouse=True)
def _fresh_redis(redis_url: str) -> None:
    """Each test starts from an empty Redis."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()


@pytest.fixture(scope="session")
def openai_server() -> Iterator[tuple[str, OpenAIUpstreamState]]:
    app, state = create_openai_upstream()
    with serve(app) as url:
        yield url, state


@pytest.fixture
def upstream(openai_server: tuple[str, OpenAIUpstreamState]) -> OpenAIUpstreamState:
    """The fake OpenAI-compatible upstream's state, fresh for each test."""
    _, state = openai_server
    fresh = OpenAIUpstreamState()
    for name in state.__dataclass_fields__:
        setattr(state, name, getattr(fresh, name))
    return state


def gateway_settings(**overrides: Any) -> Settings:
    """Settings for a gateway under test; the server-side tools are off unless asked for, and
    its data directory (documents, memories) is its own unless one is given."""
    values: dict[str, Any] = {
        "data_dir": Path(tempfile.mkdtemp(prefix="gateway-", dir=os.environ.get("DATA_DIR"))),
        "ollama_base_url": "",
        "local_enabled": False,
        "request_timeout": 2.0,
        "connect_timeout": 2.0,
        "retry_backoff": 0.01,
        "retry_backoff_max": 0.05,
        "persona_path": PERSONA,
        "enabled_tools": [],
        "intent_warmup": False,
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


@pytest.fixture
def make_gateway(
    openai_server: tuple[str, OpenAIUpstreamState], upstream: OpenAIUpstreamState
) -> Iterator[MakeGateway]:
    """Start a gateway (real uvicorn on loopback) wired to the fake upstream; returns its URL."""
    url, _ = openai_server
    with ExitStack() as stack:

        def make(**overrides: Any) -> str:
            overrides.setdefault("openai_base_url", f"{url}/v1")
            overrides.setdefault("openai_api_key", "upstream-key")
            plugins = overrides.pop("tool_plugins", None)
            exporter = overrides.pop("span_exporter", None)
            app = create_app(gateway_settings(**overrides), plugins, span_exporter=exporter)
            return stack.enter_context(serve(app))

        yield make


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> str:
    return make_gateway()


@pytest.fixture
def ollama_server() -> Iterator[tuple[str, FakeOllama]]:
    """A fresh fake Ollama server on loopback (its installed models change when one is pulled);
    yields its base URL (no `/v1`) and the fake, to inspect what it was sent."""
    fake = FakeOllama()
    with serve(fake.app) as url:
        yield url, fake
