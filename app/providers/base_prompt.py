"""Prompts for a base model: one that was never tuned to chat and has no chat template, such as
the packaged Gemma 3 270M. Such a model continues text; it does not follow instructions. Given
the persona's paragraph of rules in front of the question, it carries on writing rules, or
echoes them, until max_tokens. So the conversation is framed the way base models are prompted:
a one-line description of the assistant, three short example exchanges (a fourth when a tool
result is in the conversation), the conversation as `User:` / `Assistant:` lines and an open
`Assistant:` line. Generation stops where the model starts the next turn or a new paragraph;
unless the request says otherwise, answers are short and sampled near-greedily.

An answer asked for as JSON (`response_format`; llama.cpp's grammar makes it one) gets the same
frame, with the description saying so (and giving the schema) and the examples answered as JSON
objects, so that the model has seen what to put inside the braces and when to close them.

The gateway puts its persona in front of the system message (`app/chat/persona.py`); here it
is recognised and reduced to the one-line description, which names the persona. What else the
system message says (the client's own instructions, a session's summary) stays, on its own lines
under the description. Tool results the gateway adds to the user's message stay in that message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

BASE_FORMAT = "base"
"""The LOCAL_CHAT_FORMAT value that asks for this framing (the packaged model's default; a GGUF
without a chat template and no LOCAL_CHAT_FORMAT gets it too)."""

DEFAULT_MAX_TOKENS = 80
"""max_tokens when the request gives none (LOCAL_MAX_TOKENS if lower): an answer of a sentence or
two, a second or two on a laptop; a base model that has not stopped by then is rambling."""

DEFAULT_TEMPERATURE = 0.3
"""temperature when the request gives none: sampled at 1.0, the 270M model wanders off the
question far more often (docs/PERFORMANCE.md, "The embedded model's answers")."""

USER, ASSISTANT = "User", "Assistant"

STOPS = (f"\n{USER}:", f"\n{ASSISTANT}:", "\n\n")
"""Where the model's turn is over: it starts the next turn, or a new paragraph (what a base model
writes after a blank line is no longer the answer, but more text of some other kind)."""

EXAMPLES = (
    ("Hi!", "Hello! How can I help you today?"),
    ("What is the capital of Italy?", "Rome is the capital of Italy."),
    (
        "Tell me a fun fact.",
        "Honey never spoils: edible honey has been found in ancient Egyptian tombs.",
    ),
)
"""Exchanges that show the length and tone of an answer before the real conversation."""

TOOL_RESULT_END = "[End of tool result]"
"""How `app/chat/tool_loop.py` ends the tool result it puts in front of the user's message."""

TOOL_EXAMPLE = (
    "[The gateway ran the calculator tool for this message; its result follows. Answer from it "
    f'and name its source.]\n{{"expression":"6*7","result":42}}\n{TOOL_RESULT_END}\n\n'
    "What is 6*7?",
    "6*7 = 42, says the calculator.",
)
"""One more exchange when the conversation holds a tool result: a question with a result in
front, in the tool loop's shape, and an answer taken from it. Without it the 270M model used the
calculator's result in 15 of 48 answers, with it in 37; shown to every prompt, it also leaked
into unrelated answers ("Hello!" -> "What is 42?"), so it is shown only when it applies."""

_LABELS = {"user": USER, "assistant": ASSISTANT, "tool": "Tool result"}


@dataclass(frozen=True, slots=True)
class PersonaText:
    """What the gateway's persona looks like in a system message, and its short form."""

    name: str = ""
    instructions: str = ""


def describe(name: str, *, json: bool = False) -> str:
    """The one line that stands for the persona at the top of the transcript."""
    who = name.strip() or ASSISTANT
    answers = "with one short JSON object" if json else "in one or two short, accurate sentences"
    return f"A conversation between a user and {who}, a helpful assistant that answers {answers}."


def without_persona(system: str, persona: PersonaText) -> str:
    """`system` without the persona's instructions where the gateway puts them: the whole text,
    or its start followed by the client's own system message."""
    instructions = persona.instructions.strip()
    text = system.strip()
    if instructions and text.startswith(instructions):
        return text[len(instructions) :].strip()
    return text


def render(
    messages: Sequence[Mapping[str, str]],
    persona: PersonaText = PersonaText(),
    *,
    json: bool = False,
    schema: dict[str, Any] | None = None,
) -> str:
    """The prompt for `messages` (roles system, developer, user, assistant, tool; text content):
    description, system lines, examples, the conversation, then an open assistant line. `json`:
    the answer is a JSON object (matching `schema`, when given)."""
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for message in messages:
        role, text = message.get("role", "user"), message.get("content") or ""
        if role in ("system", "developer"):
            if rest := without_persona(text, persona):
                system.append(rest)
        elif text.strip():
            turns.append((_LABELS.get(role, USER), text.strip()))
    lines = [describe(persona.name, json=json)]
    if schema is not None:
        lines.append("Every answer matches this JSON schema: " + orjson.dumps(schema).decode())
    lines += [*system, ""]
    tool_result = any(label == _LABELS["tool"] or TOOL_RESULT_END in text for label, text in turns)
    for question, answer in (*EXAMPLES, TOOL_EXAMPLE) if tool_result else EXAMPLES:
        shown = orjson.dumps({"answer": answer}).decode() if json else answer
        lines += [f"{USER}: {question}", f"{ASSISTANT}: {shown}"]
    lines += [f"{label}: {text}" for label, text in turns]
    return "\n".join([*lines, f"{ASSISTANT}:"])
