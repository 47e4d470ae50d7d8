"""The intents file: the shipped support-desk set, INTENTS_FILE, and malformed files refused with
the file, the line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.pipelines.intents import DEFAULT_FILE, Target, Thresholds, load_intents


def test_the_default_set_is_a_support_desk() -> None:
    intents = load_intents()
    assert intents.source == str(DEFAULT_FILE)
    assert len(intents.names) >= 8
    assert intents.fallback == "general"
    assert {intent.target.kind for intent in intents} >= {"prompt", "pipeline", "escalate"}
    urgent = [intent for intent in intents if intent.urgent]
    assert [intent.name for intent in urgent] == ["emergency"]
    assert urgent[0].target.kind == "escalate"
    assert all(len(intent.examples) >= 30 for intent in intents)
    assert intents.thresholds == Thresholds()
    assert len(intents.digest) == 64


def test_the_default_set_ships_with_the_package() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"app.pipelines" = ["intents.yaml"]' in pyproject
    assert DEFAULT_FILE.parent.name == "pipelines"


def test_intents_file_is_a_pipeline_setting(small_file: Path) -> None:
    assert load_settings(_env_file=None).pipelines.intents_file is None
    assert load_settings(_env_file=None, intents_file="").pipelines.intents_file is None
    settings = load_settings(_env_file=None, intents_file=str(small_file))
    intents = load_intents(settings.pipelines.intents_file)
    assert intents.names == ["safety", "billing", "delivery", "refunds", "other"]
    assert intents["delivery"].target == Target("pipeline", "agents")
    assert intents["refunds"].target == Target("model", "openai/gpt-test")
    assert intents["safety"].urgent
    assert intents["safety"].target == Target(
        "escalate", "Keep away from it; our safety team has been alerted."
    )
    assert intents.thresholds == Thresholds(
        match=0.45, margin=0.05, floor=0.25, switch=0.7, neighbours=1
    )
    assert intents["safety"].patterns[0].search("The TOASTER is ON FIRE")
    assert "billing" in intents
    assert "nothing" not in intents


GOOD_INTENT = """\
fallback: other
intents:
  - name: other
    description: anything
    prompt: be brief
    examples: [hello]
"""


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (GOOD_INTENT + "  - name: billing\n   description: x\n", 8, "not valid YAML"),
        ("fallback: other\nintents: [\n", 3, "not valid YAML"),
        ("", None, "the file is empty"),
        ("- a list\n", 1, "the file must be a mapping"),
        ("fallback: other\n", 1, "`intents` is missing"),
        ("fallback: other\nintents: []\n", 2, "`intents` must be a non-empty list"),
        ("fallback: other\nintent:\n  - name: x\n", 2, "unknown field 'intent'"),
        (GOOD_INTENT.replace("fallback: other", "fallback: nobody"), 1, "'nobody' is not one"),
        (GOOD_INTENT + "    colour: red\n", 7, "unknown field 'colour'"),
        (GOOD_INTENT + "    prompt: twice\n", 7, "'prompt' is given twice"),
        (GOOD_INTENT.replace("    prompt: be brief\n", ""), 3, "needs exactly one target"),
        (GOOD_INTENT.replace("prompt: be brief", "prompt: a\n    model: m"), 3, "(prompt, model)"),
        (GOOD_INTENT.replace("prompt: be brief", "prompt: ''"), 5, "must be a non-empty string"),
        (GOOD_INTENT.replace("name: other", "name: Other!"), 3, "must match"),
        (GOOD_INTENT.replace("    description: anything\n", ""), 3, "has no `description`"),
        (GOOD_INTENT + "    urgent: true\n", 7, "its target must be `escalate`"),
        (GOOD_INTENT + "    urgent: yes please\n", 7, "`urgent` must be true or false"),
        (
            GOOD_INTENT.replace("prompt: be brief", "escalate: help\n    urgent: true"),
            1,
            "the fallback intent 'other' cannot be urgent",
        ),
        (GOOD_INTENT + "    patterns: ['(unclosed']\n", 7, "is not a regular expression"),
        (GOOD_INTENT + "    patterns: '\\bhi\\b'\n", 7, "must be a list"),
        (GOOD_INTENT.replace("[hello]", "[hello, {a: b}]"), 6, "must be a single value"),
        (GOOD_INTENT.replace("[hello]", "[hello, '  Hello ']"), 6, "given already, to 'other'"),
        (
            GOOD_INTENT + "  - name: greeting\n    description: hi\n    prompt: p\n"
            "    examples:\n      - HELLO\n",
            11,
            "the example 'HELLO' is given already, to 'other' on line 6",
        ),
        (
            GOOD_INTENT + "  - name: other\n    description: again\n    prompt: p\n",
            7,
            "a second intent named 'other'",
        ),
        (GOOD_INTENT + "thresholds:\n  match: 1.5\n", 8, "`match` must be between 0 and 1"),
        (GOOD_INTENT + "thresholds:\n  margin: lots\n", 8, "`margin` must be a number"),
        (GOOD_INTENT + "thresholds:\n  neighbours: 0\n", 8, "`neighbours` must be an integer"),
        (GOOD_INTENT + "thresholds:\n  match: 0.3\n  floor: 0.4\n", 8, "`floor` (0.4) is above"),
        (GOOD_INTENT + "thresholds:\n  switch: -1\n", 8, "`switch` must be between 0 and 1"),
        (GOOD_INTENT + "thresholds:\n  limit: 0.3\n", 8, "unknown field 'limit'"),
    ],
)
def test_a_malformed_file_is_refused_naming_file_line_and_reason(
    tmp_path: Path, text: str, line: int | None, reason: str
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_intents(path)
    message = str(raised.value)
    where = f"intents file {path}" + (f", line {line}:" if line else ":")
    assert message.startswith(where), message
    assert reason in message, message


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"intents file .*absent\.yaml cannot be read"):
        load_intents(tmp_path / "absent.yaml")
