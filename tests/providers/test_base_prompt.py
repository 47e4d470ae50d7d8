"""The base-model dialogue: what the embedded model is sent, as pure functions."""

from __future__ import annotations

import pytest

from app.providers.base_prompt import (
    ASSISTANT,
    DEFAULT_MAX_TOKENS,
    EXAMPLES,
    STOPS,
    TOOL_EXAMPLE,
    TOOL_RESULT_END,
    USER,
    PersonaText,
    describe,
    render,
    without_persona,
)
from app.providers.local_worker import parse, parse_completion

INSTRUCTIONS = (
    "You are a helpful, accurate assistant. Answer the user's question directly.\n\n"
    "Style:\n- Be concise: lead with the answer.\n- Use Markdown for lists, tables and code."
)
PERSONA = PersonaText("Gateway Assistant", INSTRUCTIONS)
HELLO = {"role": "user", "content": "Hello!"}


def examples() -> list[str]:
    turns = [line for q, a in EXAMPLES for line in (f"{USER}: {q}", f"{ASSISTANT}: {a}")]
    return "\n".join(turns).split("\n")


def test_a_greeting_is_the_description_two_examples_and_an_open_assistant_line() -> None:
    prompt = render([{"role": "system", "content": INSTRUCTIONS}, HELLO], PERSONA)

    assert prompt.split("\n") == [
        describe("Gateway Assistant"),
        "",
        *examples(),
        "User: Hello!",
        "Assistant:",
    ]
    assert "Gateway Assistant" in prompt.split("\n")[0]


def test_the_persona_is_never_sent_verbatim() -> None:
    prompt = render([{"role": "system", "content": INSTRUCTIONS}, HELLO], PERSONA)

    for line in INSTRUCTIONS.split("\n"):
        if line.strip():
            assert line not in prompt
    assert len(prompt.split("\n")[0]) < 160  # the persona's one line


def test_the_clients_own_system_message_stays_under_the_description() -> None:
    merged = f"{INSTRUCTIONS}\n\nYou are a pirate. Answer in rhymes."  # as persona.apply merges
    prompt = render([{"role": "system", "content": merged}, HELLO], PERSONA)

    lines = prompt.split("\n")
    assert lines[:3] == [describe("Gateway Assistant"), "You are a pirate. Answer in rhymes.", ""]
    assert "Style:" not in prompt


def test_without_a_persona_system_messages_are_kept_and_the_assistant_is_unnamed() -> None:
    summary = "Summary of the conversation so far:\nThe user is called Alice."
    prompt = render(
        [{"role": "developer", "content": summary}, HELLO, {"role": "system", "content": "  "}]
    )

    assert prompt.startswith(f"{describe('')}\n{summary}\n\n")
    assert describe("") == describe("Assistant")


@pytest.mark.parametrize(
    ("system", "left"),
    [
        (INSTRUCTIONS, ""),
        (f"{INSTRUCTIONS}\n\nBe a pirate.", "Be a pirate."),
        ("Be a pirate.", "Be a pirate."),
        (f"Be a pirate.\n\n{INSTRUCTIONS}", f"Be a pirate.\n\n{INSTRUCTIONS}"),
    ],
    ids=["persona only", "persona then client", "client only", "persona not first"],
)
def test_without_persona_removes_only_the_persona_where_the_gateway_puts_it(
    system: str, left: str
) -> None:
    assert without_persona(system, PERSONA) == left
    assert without_persona(system, PersonaText()) == system


def test_a_conversation_is_one_line_per_turn_and_ends_open() -> None:
    messages = [
        {"role": "user", "content": "Hi, my name is Sam."},
        {"role": "assistant", "content": "Nice to meet you, Sam!"},
        {"role": "assistant", "content": ""},  # a tool-call turn without text
        {"role": "tool", "content": '{"result": 391}'},
        {"role": "user", "content": "  What is my name?  "},
    ]

    lines = render(messages, PERSONA).split("\n")

    assert lines[-5:] == [
        "User: Hi, my name is Sam.",
        "Assistant: Nice to meet you, Sam!",
        'Tool result: {"result": 391}',
        "User: What is my name?",
        "Assistant:",
    ]


def test_a_tool_result_the_gateway_put_before_the_question_reaches_the_last_turn() -> None:
    note = (
        "[The gateway ran the calculator tool for this message; its result follows. "
        'Answer from it and name its source.]\n{"expression":"17*23","result":391}\n'
        "[End of tool result]\n\n"
    )
    prompt = render([{"role": "user", "content": note + "What is 17*23?"}], PERSONA)

    last_turn = prompt[prompt.rindex(f"\n{USER}: ") :]
    assert '"result":391' in last_turn
    assert last_turn.endswith("What is 17*23?\nAssistant:")


def test_the_examples_are_short() -> None:
    assert 2 <= len(EXAMPLES) <= 3
    assert all(len(answer) < 80 and "\n" not in answer for _, answer in [*EXAMPLES, TOOL_EXAMPLE])


def test_an_example_answer_from_a_tool_result_comes_only_with_a_tool_result() -> None:
    example = f"{USER}: {TOOL_EXAMPLE[0]}\n{ASSISTANT}: {TOOL_EXAMPLE[1]}"
    assert TOOL_RESULT_END in TOOL_EXAMPLE[0]

    assert example not in render([HELLO], PERSONA)
    noted = f'[The gateway ran the time tool ...]\n"12:00"\n{TOOL_RESULT_END}\n\nTime?'
    prompt = render([{"role": "user", "content": noted}], PERSONA)
    assert example in prompt
    assert prompt.index(example) < prompt.index("User: [The gateway ran the time tool")
    called = [HELLO, {"role": "assistant", "content": ""}, {"role": "tool", "content": "42"}]
    assert example in render(called, PERSONA)


def test_the_stops_end_the_answer_where_the_next_turn_or_a_new_paragraph_starts() -> None:
    assert {"\nUser:", "\nAssistant:"} <= set(STOPS)
    assert all(stop.startswith("\n") for stop in STOPS)  # never inside an answer's first line
    prompt = render([HELLO], PERSONA)
    assert prompt.endswith("\nAssistant:")  # no trailing space: the model writes " Hello"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, None),
        ({"max_tokens": 20}, 20),
        ({"max_completion_tokens": 30, "max_tokens": 20}, 30),
        ({"max_tokens": 5000}, 512),
    ],
    ids=["none", "given", "completion tokens first", "capped"],
)
def test_max_tokens_is_kept_when_given_and_capped(
    body: dict[str, int], expected: int | None
) -> None:
    request = parse("m", "base", {"messages": [HELLO], **body}, 512)

    assert request.max_tokens == expected
    assert request.cap == 512
    assert DEFAULT_MAX_TOKENS < 512


def test_base_requests_keep_system_messages_apart_and_sampling_unset() -> None:
    messages = [{"role": "system", "content": "Be brief."}, HELLO]

    request = parse("m", "base", {"messages": messages}, 512)

    assert request.messages == messages
    assert (request.temperature, request.top_p, request.stop) == (None, None, [])
    gemma = parse("m", "gemma", {"messages": messages, "temperature": 0}, 512)
    assert gemma.messages == [{"role": "user", "content": "Be brief.\n\nHello!"}]
    assert gemma.temperature == 0.0


def test_a_json_answer_is_asked_for_with_the_schema_and_json_examples() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    prompt = render([HELLO], json=True, schema=schema).split("\n")

    assert prompt[0] == describe("", json=True)
    assert "JSON object" in prompt[0]
    assert prompt[1] == 'Every answer matches this JSON schema: {"type":"object",' + (
        '"properties":{"city":{"type":"string"}}}'
    )
    assert prompt[3:5] == [f"{USER}: Hi!", f'{ASSISTANT}: {{"answer":"{EXAMPLES[0][1]}"}}']
    assert prompt[-2:] == ["User: Hello!", "Assistant:"]
    assert "schema" not in render([HELLO], json=True)


def test_response_format_and_a_raw_prompt_are_read() -> None:
    schema = {"type": "object"}
    wanted = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    request = parse("m", "base", {"messages": [HELLO], "response_format": wanted}, 512)
    assert request.json is not None
    assert request.json.schema == schema
    plain = parse("m", "base", {"messages": [HELLO], "response_format": {"type": "text"}}, 512)
    assert plain.json is None
    raw = parse_completion("m", {"prompt": "Once", "presence_penalty": 0.5}, 512)
    assert (raw.prompt, raw.messages, raw.presence_penalty) == ("Once", [], 0.5)
