"""`python -m app serve` as a real child process: bad settings exit 2 with a clear message; a
good start logs its providers and serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


def child_env(**settings: str) -> dict[str, str]:
    """This environment (PYTHONPATH as is) without any gateway setting, plus `settings`."""
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(OLLAMA_BASE_URL="", LOCAL_ENABLED="false", PYTHONUNBUFFERED="1")
    env.update(settings)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "serve", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


@contextmanager
def serving(env: dict[str, str], log: Path, port: int, *args: str) -> Iterator[str]:
    """Start the gateway, wait until GET /health/live answers, yield its URL; always stop the
    child (by its PID) afterwards."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if child.poll() is not None:
                pytest.fail(f"the gateway exited with {child.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer within {START_TIMEOUT}s:\n{log.read_text()}")
            time.sleep(0.05)
        yield url
        child.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert child.wait(timeout=15) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def test_a_bad_port_exits_2_naming_port() -> None:
    result = run(child_env(PORT="abc"))
    assert result.returncode == 2, result.stderr
    assert "PORT" in result.stderr
    assert "'abc'" in result.stderr
    assert result.stderr.startswith("ai-gateway: invalid configuration")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_several_bad_settings_are_named_together() -> None:
    result = run(child_env(PORT="abc", REQUEST_TIMEOUT="-1", OLLAMA_BASE_URL="ftp://x"))
    assert result.returncode == 2, result.stderr
    for name in ("PORT", "REQUEST_TIMEOUT", "OLLAMA_BASE_URL"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_persona_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    persona = tmp_path / "persona.json"
    persona.write_text('{"system_prompt": "unterminated', encoding="utf-8")
    result = run(child_env(PERSONA_PATH=str(persona), PORT=str(free_port())))
    assert result.returncode == 2, result.stderr
    assert f"persona file {persona} is invalid" in result.stderr
    assert "Invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_good_start_logs_providers_and_serves(
    tmp_path: Path, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    upstream_url, _ = openai_server
    port = free_port()
    env = child_env(PORT=str(port), OPENAI_BASE_URL=f"{upstream_url}/v1")
    log = tmp_path / "gateway.log"
    with serving(env, log, port) as url:
        assert httpx.get(f"{url}/health/live").json() == {"status": "ok"}
        assert httpx.get(f"{url}/v1/models").status_code == 200
        text = log.read_text()
        assert "provider openai: active, reachable" in text
        assert "provider ollama: skipped, OLLAMA_BASE_URL is empty" in text
        assert "provider llamacpp: skipped, LLAMACPP_BASE_URL is empty" in text
        assert "API_KEYS is not set" in text
        assert "WARNING" in next(line for line in text.splitlines() if "API_KEYS" in line)
    assert "Traceback" not in log.read_text()


def test_an_unreachable_provider_is_logged_but_does_not_stop_the_start(tmp_path: Path) -> None:
    port = free_port()
    env = child_env(PORT=str(port), LLAMACPP_BASE_URL="http://127.0.0.1:9", API_KEYS="k1")
    log = tmp_path / "gateway.log"
    with serving(env, log, port) as url:
        assert httpx.get(f"{url}/health").status_code == 503
        assert httpx.get(f"{url}/v1/models").status_code == 401
        text = log.read_text()
        assert "provider llamacpp: active, NOT reachable now" in text
        assert "provider openai: skipped" in text
        assert "API_KEYS is not set" not in text


def test_the_port_flag_overrides_port(tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    assert env_port != flag_port
    env = child_env(PORT=str(env_port))
    log = tmp_path / "gateway.log"
    with serving(env, log, flag_port, "--port", str(flag_port)) as url:
        assert url.endswith(f":{flag_port}")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{env_port}/health/live", timeout=2)


def test_model_ids_naming_an_inactive_provider_are_warned_about(tmp_path: Path) -> None:
    port = free_port()
    env = child_env(
        PORT=str(port),
        LLAMACPP_BASE_URL="http://127.0.0.1:9",
        DEFAULT_MODEL="llamacpp/some-model",
        FALLBACK_MODELS="openai/gpt-4o-mini,ollama/llama3.2:3b",
    )
    log = tmp_path / "gateway.log"
    with serving(env, log, port):
        text = log.read_text()
        assert "openai/gpt-4o-mini names provider openai, which is not active" in text
        assert "ollama/llama3.2:3b names provider ollama, which is not active" in text
        assert "llamacpp/some-model names provider" not in text
        assert "persona 'Gateway Assistant' is applied to every turn" in text
