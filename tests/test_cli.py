"""`python -m app serve` as a real child process: bad settings exit 2 with a clear message; a
good start logs its providers and serves. `python -m app keys` creates and lists keys."""

from __future__ import annotations

import hashlib
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

from app.config import setting_names
from app.security.keys import read_key_file
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0  # a loaded machine takes long to import torch and load the embedder


def child_env(**settings: str) -> dict[str, str]:
    """This environment (PYTHONPATH as is) without any gateway setting, plus `settings`."""
    names = {name.upper() for name in setting_names()}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(OLLAMA_BASE_URL="", LOCAL_ENABLED="false", PYTHONUNBUFFERED="1")
    env.update(settings)
    return env


def in_repo(env: dict[str, str]) -> dict[str, str]:
    """`env` for a gateway run in the checkout: the test run's DATA_DIR unless `env` names one,
    so that no keys file or Redis of the checkout's `data/` is used."""
    return {"DATA_DIR": os.environ["DATA_DIR"], **env}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "serve", *args],
        cwd=REPO,
        env=in_repo(env),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


@contextmanager
def started(
    env: dict[str, str], log: Path, port: int, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start the gateway, wait until GET /health/live answers, yield the child and its URL;
    kill the child (by its PID) afterwards if it still runs."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", *args],
            cwd=REPO,
            env=in_repo(env),
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
        yield child, url
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


@contextmanager
def serving(env: dict[str, str], log: Path, port: int, *args: str) -> Iterator[str]:
    """Start the gateway, yield its URL, then stop it with SIGTERM as a user would and check
    that it shut down gracefully."""
    with started(env, log, port, *args) as (child, url):
        yield url
        child.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert child.wait(timeout=15) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text()


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


def test_workers_need_shared_state() -> None:
    result = run(child_env(WORKERS="2"))
    assert result.returncode == 2
    assert "WORKERS > 1 needs REDIS_URL" in result.stderr
    result = run(child_env(WORKERS="2", REDIS_URL="redis://127.0.0.1:1"))
    assert result.returncode == 2
    assert "WORKERS > 1 needs CHROMA_HOST" in result.stderr


def test_workers_sum_their_metrics(
    tmp_path: Path, openai_server: tuple[str, OpenAIUpstreamState], redis_url: str
) -> None:
    upstream_url, _ = openai_server
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = child_env(
        PORT=str(port),
        OPENAI_BASE_URL=f"{upstream_url}/v1",
        WORKERS="2",
        REDIS_URL=redis_url,
        RAG_ENABLED="false",
        MEMORY_ENABLED="false",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    with serving(env, tmp_path / "gateway.log", port) as url:
        for _ in range(40):  # a new connection each: the workers take turns accepting
            assert httpx.get(f"{url}/v1/models").status_code == 200
        writers = {path.stem.rpartition("_")[2] for path in metrics_dir.glob("histogram_*.db")}
        assert len(writers) == 2, "both workers answered"
        for _ in range(4):  # whichever worker answers the scrape tells the sum
            scraped = httpx.get(f"{url}/metrics").text
            line = next(
                line
                for line in scraped.splitlines()
                if line.startswith("http_server_request_duration_seconds_count")
                and 'http_route="/v1/models"' in line
            )
            assert float(line.rpartition(" ")[2]) == 40


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


def keys(cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m app keys ...` run in `cwd`, with only `settings` set."""
    env = child_env(PYTHONPATH=str(REPO), **settings)
    return subprocess.run(
        [sys.executable, "-m", "app", "keys", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def created_key(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gk-")
    assert len(lines[0]) > 40
    return lines[0]


@pytest.mark.parametrize("name", ["keys.yaml", "keys.json"])
def test_keys_create_prints_the_key_once_and_stores_its_hash(
    tmp_path: Path, make_gateway: MakeGateway, name: str
) -> None:
    path = tmp_path / "private" / name
    first = keys(tmp_path, "create", "--owner", "alice", "--rpm", "60", "--file", str(path))
    alice = created_key(first)
    assert path.stat().st_mode & 0o777 == 0o600
    digest = hashlib.sha256(alice.encode()).hexdigest()
    assert f"created key {digest[:12]} for owner alice, rpm 60, tpm unlimited" in first.stderr
    assert f"set API_KEYS_FILE={path}" in first.stderr
    args = ("create", "--service", "--tpm", "1000", "--name", "batch jobs", "--file", str(path))
    service = created_key(keys(tmp_path, *args))
    text = path.read_text(encoding="utf-8")
    assert f"sha256:{digest}" in text
    assert alice not in text
    assert service not in text
    assert [(e.owner, e.rpm, e.tpm, e.name) for e in read_key_file(path)] == [
        ("alice", 60, None, None),
        (None, None, 1000, "batch jobs"),
    ]
    listing = keys(tmp_path, "list", "--file", str(path))
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert rows[0] == ["KEY_ID", "OWNER", "NAME", "ROLE", "RPM", "TPM", "CREATED"]
    assert rows[1][:6] == [digest[:12], "alice", "-", "standard", "60", "unlimited"]
    assert rows[2][1:7] == ["(service)", "batch", "jobs", "standard", "unlimited", "1000"]
    assert alice not in listing.stdout
    assert service not in listing.stdout

    url = make_gateway(api_keys_file=path)
    for key in (alice, service):
        resp = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200, resp.text
    assert httpx.get(f"{url}/v1/models").status_code == 401
    wrong = {"Authorization": f"Bearer {alice}x"}
    assert httpx.get(f"{url}/v1/models", headers=wrong).status_code == 401


def test_keys_create_admin_makes_an_admin_key_the_gateway_honours(
    tmp_path: Path, make_gateway: MakeGateway
) -> None:
    path = tmp_path / "keys.yaml"
    boss = created_key(keys(tmp_path, "create", "--owner", "root", "--admin", "--file", str(path)))
    result = keys(tmp_path, "create", "--service", "--file", str(path))
    worker = created_key(result)
    boss_id = hashlib.sha256(boss.encode()).hexdigest()[:12]
    assert [(e.owner, e.admin) for e in read_key_file(path)] == [("root", True), (None, False)]
    assert "admin: true" in path.read_text(encoding="utf-8")
    listing = keys(tmp_path, "list", "--file", str(path)).stdout.splitlines()
    assert [line.split()[3] for line in listing] == ["ROLE", "admin", "standard"]
    assert listing[1].split()[0] == boss_id

    url = make_gateway(api_keys_file=path)
    invalidate = f"{url}/cache/invalidate/llm"
    for key, status in ((boss, 200), (worker, 403)):
        resp = httpx.delete(invalidate, headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == status, resp.text
    assert httpx.delete(invalidate).status_code == 401


def test_keys_create_tells_the_role_and_when_the_gateway_accepts_the_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = keys(tmp_path, "create", "--owner", "fay", "--admin", DATA_DIR=str(state))
    created_key(result)
    assert "created admin key" in result.stderr
    assert "a running gateway accepts it once restarted" in result.stderr
    assert "POST /v1/keys" in result.stderr


def test_keys_default_to_api_keys_file_else_data_dir(tmp_path: Path) -> None:
    configured = tmp_path / "configured.json"
    result = keys(tmp_path, "create", "--owner", "bob", API_KEYS_FILE=str(configured))
    created_key(result)
    assert "set API_KEYS_FILE" not in result.stderr
    assert read_key_file(configured)[0].owner == "bob"
    listing = keys(tmp_path, "list", API_KEYS_FILE=str(configured))
    assert listing.stdout.splitlines()[1].split()[1] == "bob"

    state = tmp_path / "state"
    result = keys(tmp_path, "create", "--owner", "carol", DATA_DIR=str(state))
    created_key(result)
    assert "set API_KEYS_FILE" not in result.stderr
    assert read_key_file(state / "keys.yaml")[0].owner == "carol"
    assert (state / "keys.yaml").stat().st_mode & 0o777 == 0o600
    created_key(keys(tmp_path, "create", "--owner", "dave"))
    assert read_key_file(tmp_path / "data" / "keys.yaml")[0].owner == "dave"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["configured.json", "data", "state"]


def test_serve_reads_data_dirs_keys_file_when_api_keys_file_is_unset(
    tmp_path: Path, redis_url: str
) -> None:
    state = tmp_path / "state"
    key = created_key(keys(tmp_path, "create", "--owner", "erin", DATA_DIR=str(state)))
    port = free_port()
    env = child_env(PORT=str(port), DATA_DIR=str(state), REDIS_URL=redis_url)
    log = tmp_path / "gateway.log"
    with serving(env, log, port) as url:
        assert httpx.get(f"{url}/v1/models").status_code == 401
        ok = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200, ok.text
        text = log.read_text()
        assert f"API keys: {state / 'keys.yaml'} (API_KEYS_FILE is unset" in text
        assert "API_KEYS is not set" not in text


def test_keys_refuses_bad_arguments_and_leaves_a_bad_file_alone(tmp_path: Path) -> None:
    for args in (["--rpm", "5"], ["--owner", "a", "--service"], ["--owner", " "]):
        result = keys(tmp_path, "create", *args, "--file", "k.yaml")
        assert result.returncode == 2
        assert result.stdout == ""
        assert "usage:" in result.stderr
    assert not (tmp_path / "k.yaml").exists()
    assert "must be a positive integer" in keys(tmp_path, "create", "--rpm", "0").stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("- owner: x\n", encoding="utf-8")
    result = keys(tmp_path, "create", "--owner", "a", "--file", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"keys file {bad}, entry 1: hash must be" in result.stderr
    assert bad.read_text(encoding="utf-8") == "- owner: x\n"
    missing = keys(tmp_path, "list", "--file", "nope.yaml")
    assert missing.returncode == 2
    assert "keys file nope.yaml cannot be read" in missing.stderr


def test_a_bad_keys_file_stops_serve_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(f'[{{"hash": "sha256:{"a" * 64}", "owner": "x", "rpm": 0}}]', "utf-8")
    result = run(child_env(API_KEYS_FILE=str(path), PORT=str(free_port())))
    assert result.returncode == 2, result.stderr
    assert f"ai-gateway: keys file {path}, entry 1: rpm must be a positive integer" in result.stderr
    assert "Traceback" not in result.stderr
