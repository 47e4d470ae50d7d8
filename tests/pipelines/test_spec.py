"""PIPELINES_FILE: what it may define, and the file, line and reason of what it may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError
from app.pipelines.spec import load_pipelines, unknown_tools

TOOLS = ("calculator", "time")
GOOD = """\
pipelines:
  - id: brief
    description: Summarise, then count
    steps:
      - name: summary
        prompt: Summarise.
        model: openai/gpt-test
        tools: [calculator]
        max_tokens: 50
      - name: words
        function: tests.pipelines.steps:count_words
      - name: answer
        prompt: Answer.
        after: [summary, words]
"""


def load(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    [brief] = load_pipelines(load(tmp_path, GOOD))
    assert brief.id == "brief"
    assert [s["name"] for s in brief.steps()] == ["summary", "words", "answer"]
    assert [s["after"] for s in brief.steps()] == [[], ["summary"], ["summary", "words"]]
    assert brief.steps()[0] == {
        "name": "summary",
        "after": [],
        "kind": "agent",
        "model": "openai/gpt-test",
        "tools": ["calculator"],
    }
    assert brief.steps()[1]["function"] == "tests.pipelines.steps:count_words"
    assert brief.models() == ["openai/gpt-test", ""]
    assert brief.answering_model == ""


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("pipelines:\n  - id: a\n    steps: [\n", 4, "not valid YAML"),
        ("", 1, "the file is empty"),
        ("pipelines: []\n", 1, "pipelines: List should have at least 1 item"),
        ("pipelines:\n  - id: Bad Id\n    steps: [{name: a, prompt: x}]\n", 2,
         "pipelines.0.id: must be lower-case letters"),
        ("pipelines:\n  - id: a\n    steps:\n      - name: a\n        prompt: x\n"
         "        colour: red\n", 6, "colour: Extra inputs are not permitted"),
        ("pipelines:\n  - id: a\n    steps:\n      - name: a\n", 4,
         "either a prompt (an agent) or a function"),
        ("pipelines:\n  - id: a\n    steps:\n      - name: a\n        prompt: x\n"
         "        function: m:f\n", 4, "not both"),
        ("pipelines:\n  - id: a\n    steps:\n      - {name: a, prompt: x}\n"
         "      - {name: a, prompt: y}\n", 5, "two steps are named 'a'"),
        ("pipelines:\n  - id: a\n    steps:\n      - {name: a, prompt: x, after: [b]}\n"
         "      - {name: b, prompt: y}\n", 4, "comes after 'b', which is not a step before it"),
        ("pipelines:\n  - id: a\n    steps:\n      - name: a\n"
         "        function: tests.pipelines.nowhere:f\n", 5, "cannot be imported"),
        ("pipelines:\n  - id: a\n    steps:\n      - name: a\n"
         "        function: tests.pipelines.steps:NOT_A_FUNCTION\n", 5, "is not a function"),
        ("pipelines:\n  - id: a\n    steps: [{name: a, prompt: x}]\n"
         "  - id: a\n    steps: [{name: a, prompt: x}]\n", 4, "two pipelines are named 'a'"),
        ("pipelines:\n  - id: a\n    steps: [{name: a, prompt: x, max_tokens: 0}]\n", 3,
         "max_tokens: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_refusals_name_the_file_the_line_and_the_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = load(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_pipelines(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}: "), message
    assert reason in message


def test_tools_no_enabled_tool_has_are_named_with_the_line(tmp_path: Path) -> None:
    text = (
        "pipelines:\n  - id: a\n    steps:\n      - {name: s, prompt: x, tools: [calculator, rm]}\n"
    )
    path = load(tmp_path, text)
    [warning] = unknown_tools(load_pipelines(path), TOOLS)
    assert warning == (
        f"{path}, line 4: step 's' of pipeline 'a' names rm, which no enabled tool is; it runs "
        "without them"
    )


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_pipelines(tmp_path / "nope.yaml")
