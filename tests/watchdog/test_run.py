"""`python -m app watchdog` itself: it starts without the gateway's heavy modules, and bad
settings end it with exit code 2 and a message naming them."""

from __future__ import annotations

import subprocess
import sys

from tests.watchdog.harness import REPO, settings

HEAVY = ("torch", "chromadb", "sentence_transformers", "app.main", "app.services", "fastapi")


def test_the_watchdog_imports_none_of_the_gateways_heavy_modules() -> None:
    """Neither its own modules nor the CLI that `python -m app watchdog` goes through."""
    code = f"import sys, app.watchdog.run; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_bad_settings_exit_2_naming_them() -> None:
    env = settings(WATCHDOG_MODE="kubernetes", WATCHDOG_FAILURES="0")
    result = subprocess.run(
        [sys.executable, "-m", "app", "watchdog"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("ai-gateway: invalid configuration")
    assert "WATCHDOG_MODE" in result.stderr
    assert "WATCHDOG_FAILURES" in result.stderr
    assert "Traceback" not in result.stderr
