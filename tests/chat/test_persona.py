"""The persona: applied to every turn's messages, loaded from a JSON file or absent."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from app.chat.persona import Persona, load_persona
from app.config import ConfigError

REPO = Path(__file__).resolve().parent.parent.parent
PERSONA = Persona(name="Ada", system_prompt="  You are Ada.  ", style=["Be brief.", "No emoji."])
INSTRUCTIONS = "You are Ada.\n\nStyle:\n- Be brief.\n- No emoji."
USER = {"role": "user", "content": "hi"}


def test_instructions_join_the_prompt_and_the_style() -> None:
    assert PERSONA.instructions() == INSTRUCTIONS
    assert Persona(system_prompt="Only a prompt.").instructions() == "Only a prompt."
    assert Persona(style=["Terse."]).instructions() == "Style:\n- Terse."


def test_inserted_as_a_system_message_when_there_is_none() -> None:
    messages = [USER, {"role": "assistant", "content": "hello"}, USER]
    assert PERSONA.apply(messages) == [{"role": "system", "content": INSTRUCTIONS}, *messages]


@pytest.mark.parametrize("role", ["system", "developer"])
def test_merged_into_a_leading_string_system_message(role: str) -> None:
    messages = [{"role": role, "content": "Speak like a pirate.", "name": "ops"}, USER]
    applied = PERSONA.apply(messages)
    assert applied == [
        {"role": role, "content": f"{INSTRUCTIONS}\n\nSpeak like a pirate.", "name": "ops"},
        USER,
    ]


def test_merged_into_a_leading_system_message_with_parts() -> None:
    parts = [{"type": "text", "text": "Speak like a pirate."}, {"type": "text", "text": "Arr."}]
    messages: list[dict[str, Any]] = [{"role": "system", "content": parts}, USER]
    applied = PERSONA.apply(messages)
    assert applied == [
        {"role": "system", "content": [{"type": "text", "text": INSTRUCTIONS}, *parts]},
        USER,
    ]


def test_a_system_message_later_on_is_not_merged() -> None:
    messages = [USER, {"role": "system", "content": "late"}]
    assert PERSONA.apply(messages) == [{"role": "system", "content": INSTRUCTIONS}, *messages]


def test_the_callers_messages_are_not_mutated() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": "x"}]},
        {"role": "system", "content": "y"},
        USER,
    ]
    before = copy.deepcopy(messages)
    PERSONA.apply(messages)
    PERSONA.apply(messages[1:])
    assert messages == before


@pytest.mark.parametrize(
    "persona", [Persona(), Persona(name="x", system_prompt="   \n "), Persona(style=[])]
)
def test_an_empty_persona_changes_nothing(persona: Persona) -> None:
    messages = [{"role": "system", "content": "Be terse."}, USER]
    assert persona.instructions() == ""
    assert persona.apply(messages) == [{"role": "system", "content": "Be terse."}, USER]
    assert persona.apply([USER]) == [USER]


def test_load_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "persona.json"
    path.write_text(
        '{"name": "Ada", "system_prompt": "You are Ada.", "style": ["Be brief."]}',
        encoding="utf-8",
    )
    persona = load_persona(path)
    assert persona == Persona(name="Ada", system_prompt="You are Ada.", style=["Be brief."])


def test_the_shipped_persona_file_loads() -> None:
    persona = load_persona(REPO / "persona.json")
    assert persona.system_prompt
    assert persona.instructions().startswith(persona.system_prompt.strip())


def test_a_missing_file_means_no_persona(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "nowhere.json"
    persona = load_persona(path)
    assert persona == Persona()
    assert persona.apply([USER]) == [USER]
    assert str(path) in caplog.text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", ["Invalid JSON"]),
        ("", ["Invalid JSON"]),
        ('{"system_prompt": "x", "tone": "cheerful"}', ["tone", "Extra inputs are not permitted"]),
        ('{"style": "be brief"}', ["style", "valid array"]),
        ('{"system_prompt": 42}', ["system_prompt", "valid string"]),
        ('{"style": ["ok", 3]}', ["style.1", "valid string"]),
        ('["a list"]', ["file: ", "object"]),
    ],
    ids=[
        "bad-json",
        "empty",
        "unknown-key",
        "style-not-a-list",
        "prompt-not-text",
        "style-item",
        "not-an-object",
    ],
)
def test_a_bad_file_is_a_config_error_with_a_clear_message(
    tmp_path: Path, content: str, expected: list[str]
) -> None:
    path = tmp_path / "persona.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_persona(path)
    message = str(info.value)
    assert message.startswith(f"persona file {path} is invalid: ")
    for fragment in expected:
        assert fragment in message


def test_an_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_persona(tmp_path)  # a directory
