"""Pipelines from installed plugins: the entry points of `ai_gateway.pipelines`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.config import ConfigError
from app.main import create_app
from tests.conftest import MakeGateway, gateway_settings


def install(root: Path, target: str) -> None:
    """A distribution on `root` whose entry point `demo` of the group names `target`."""
    info = root / "demo_pipelines-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-pipelines\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ai_gateway.pipelines]\ndemo = {target}\n")


def test_an_installed_plugin_adds_its_pipelines(
    make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, "tests.pipelines.steps:plugin_pipelines")
    monkeypatch.syspath_prepend(str(tmp_path))
    url = make_gateway(default_model="openai/gpt-test")
    listed = [p["id"] for p in httpx.get(f"{url}/pipelines").json()["data"]]
    assert "plugged" in listed
    resp = httpx.post(f"{url}/pipelines/plugged/execute", json={"input": "hey"}, timeout=30)
    assert resp.json()["answer"] == "HEY"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("tests.pipelines.steps:broken_plugin", "failed: ValueError: cannot make pipelines"),
        ("tests.pipelines.steps:NOT_A_FUNCTION", "failed: TypeError"),
        ("tests.pipelines.nowhere:f", "failed: ModuleNotFoundError"),
    ],
)
def test_a_broken_plugin_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, reason: str
) -> None:
    install(tmp_path, target)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        create_app(gateway_settings())
    assert str(caught.value).startswith(f"pipeline plugin demo ({target}) ")
    assert reason in str(caught.value)
