"""The code stays lint-, format- and type-clean: the suite fails otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "app", "tests", "benchmarks"],
        ["ruff", "format", "--check", "app", "tests", "benchmarks"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
# mypy reads torch's, transformers' and chromadb's annotations on a fresh clone: 80 s here
@pytest.mark.timeout(900)
def test_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=840
    )
    assert result.returncode == 0, result.stdout + result.stderr
