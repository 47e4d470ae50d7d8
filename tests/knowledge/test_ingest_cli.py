"""`python -m app ingest` and `python -m app reindex` as a user runs them: files and trees into
the shared library, with a progress bar and a summary; refused beside a running gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import MakeGateway
from tests.knowledge.files import BOILER, pdf

ROOT = Path(__file__).resolve().parent.parent.parent


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ingest_a_tree_into_the_shared_library(make_gateway: MakeGateway, tmp_path: Path) -> None:
    tree = tmp_path / "notes"
    tree.mkdir()
    (tree / "boiler.md").write_text(BOILER)
    (tree / "handbook.pdf").write_bytes(pdf(["Holidays: twenty-seven paid days a year."]))
    (tree / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (tree / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    data = tmp_path / "data"
    result = run(data, "ingest", str(tree))
    assert result.returncode == 1, result.stderr  # one file failed
    out = result.stderr
    assert "ingested" in out
    assert "broken.pdf" in out
    assert "skipped" in out
    assert "binary" in out
    again = run(data, "ingest", str(tree / "boiler.md"))
    assert again.returncode == 0, again.stderr
    url = make_gateway(data_dir=data)
    documents = httpx.get(f"{url}/v1/documents").json()["data"]
    assert sorted(d["name"] for d in documents) == ["notes/boiler.md", "notes/handbook.pdf"]
    assert all(d["shared"] for d in documents)
    found = httpx.post(f"{url}/api/v1/rag/search", json={"query": "How many vacation days?"})
    assert found.json()["data"][0]["name"] == "notes/handbook.pdf"
    busy = run(data, "ingest", str(tree / "boiler.md"))
    assert busy.returncode == 1
    assert "another process" in busy.stderr
