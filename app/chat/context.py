"""What a stateful turn sends the model, under TOKEN_BUDGET: tokens counted per model, and the
context packed in this order: the persona's system prompt, the session's long-term summary, the
last SHORT_TERM_K turns, the new message (the turn's grounding in memories and passages,
`chat/grounding.py`, is placed before the new message, in a budget of its own taken from
TOKEN_BUDGET first).

Counting: `openai/*` models are counted with their own BPE vocabulary (bpe-openai ships
tiktoken's vocabularies, so nothing is downloaded): the model's encoding when bpe-openai knows
the model, else cl100k_base for the gpt-3.5 and gpt-4 families and o200k_base for the rest. Every
other model is counted with an estimate, ceil(characters / 4), since its tokenizer is not at
hand. Each message adds its role and framing (3 tokens in OpenAI's chat format, 4 in the
estimate, as other chat templates spend a few more), and the reply's priming 3 more.

Priority when the budget is tight: the persona, the summary and the new message always go; the
recent turns, newest first, while they fit.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Message = dict[str, Any]

REPLY_PRIMING = 3
SUMMARY_HEADING = "Summary of the conversation so far:"
_CL100K_FAMILY = re.compile(r"gpt-(3\.5|35|4)(-|$)")
# bpe-openai refuses a text of a million characters or of more than 200,000 tokens: a piece of
# 50,000 characters is at most 200,000 UTF-8 bytes, so at most as many tokens.
_PIECE_CHARS = 50_000
_EXACT_CHARS = 4 * _PIECE_CHARS


@dataclass(frozen=True, slots=True)
class TokenCounter:
    name: str
    """The encoding's name (`o200k_base`, `cl100k_base`) or `estimate`."""
    count: Callable[[str], int]
    per_message: int

    def messages(self, messages: Sequence[Message]) -> int:
        """Tokens of `messages` as a prompt, without the reply's priming."""
        return sum(self.per_message + self.count(text_of(m)) for m in messages)

    def prompt(self, messages: Sequence[Message]) -> int:
        """Tokens of `messages` as a whole prompt."""
        return self.messages(messages) + REPLY_PRIMING


def estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


ESTIMATE = TokenCounter("estimate", estimate, per_message=4)


@lru_cache(maxsize=64)
def counter_for(model_id: str) -> TokenCounter:
    """The counter for a `provider/model` id."""
    provider, _, model = model_id.partition("/")
    if provider != "openai" or not model:
        return ESTIMATE
    # Imported on first use: the import reads the vocabularies' metadata (half a second), and
    # the package still calls importlib.resources' deprecated open_binary.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        try:
            encoding = bpe_openai.encoding_for_model(model)
        except (ValueError, KeyError, bpe_openai.TokenizerError):
            name = "cl100k_base" if _CL100K_FAMILY.match(model) else "o200k_base"
            encoding = bpe_openai.get_encoding(name)

    def count(text: str) -> int:
        """Exact up to `_EXACT_CHARS`, in pieces bpe-openai accepts; a longer text is counted
        by extrapolating from its head, so that no one text costs more than ~0.1 s."""
        head = text[:_EXACT_CHARS]
        pieces = range(0, len(head), _PIECE_CHARS)
        tokens = sum(len(encoding.encode_ordinary(head[i : i + _PIECE_CHARS])) for i in pieces)
        return tokens if len(text) == len(head) else math.ceil(tokens * len(text) / len(head))

    return TokenCounter(str(encoding.name), count, per_message=3)


def text_of(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    return content if isinstance(content, str) else ""


def last_user_text(messages: Sequence[Message]) -> str:
    """The text of the last message when a user sent it, else empty (a tool round goes on)."""
    last = messages[-1] if messages else {}
    return text_of(last) if last.get("role") == "user" else ""


def split_turns(history: Sequence[Message]) -> list[list[Message]]:
    """`history` cut into turns, each starting at a user message."""
    turns: list[list[Message]] = []
    for message in history:
        if message.get("role") == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def system_text(summary: str) -> str:
    """The system message the gateway adds before the history (the persona goes in front of it
    when the chat service applies it)."""
    return f"{SUMMARY_HEADING}\n{summary.strip()}" if summary.strip() else ""


@dataclass(frozen=True, slots=True)
class Packed:
    messages: list[Message]
    """What the chat service is given: without the persona, which it applies itself."""
    tokens: int
    """The whole prompt, persona included, as counted."""
    turns: int
    """Recent turns sent verbatim."""
    left_out: int
    """Messages not yet in the summary that did not fit (the oldest); folded after the turn."""


def pack(
    *,
    persona: str,
    summary: str,
    history: Sequence[Message],
    new: str,
    k: int,
    budget: int,
    counter: TokenCounter,
) -> Packed:
    """The context for `new`, given the session's `summary` and its `history` (the messages not
    yet folded into the summary, oldest first)."""
    user: Message = {"role": "user", "content": new}

    text = "\n\n".join(p for p in (persona.strip(), system_text(summary)) if p)
    system = [{"role": "system", "content": text}] if text else []
    used = counter.prompt([*system, user])
    turns = split_turns(history)
    chosen: list[list[Message]] = []
    for turn in reversed(turns[-k:]):
        cost = counter.messages(turn)
        if used + cost > budget:
            break
        chosen.insert(0, turn)
        used += cost
    block = system_text(summary)
    messages: list[Message] = [{"role": "system", "content": block}] if block else []
    for turn in chosen:
        messages += ({"role": m["role"], "content": text_of(m)} for m in turn)
    messages.append(user)
    kept = sum(len(turn) for turn in chosen)
    return Packed(messages, used, len(chosen), len(history) - kept)


def fold_count(
    history: Sequence[Message],
    *,
    persona: str,
    k: int,
    budget: int,
    max_messages: int,
    counter: TokenCounter,
) -> int:
    """How many of the oldest messages of `history` (not yet in the summary, the turn just
    answered included) to fold into the summary now, so that the next turn can send the rest
    verbatim: at most K turns, within half the budget less the persona (the other half is for
    the summary, the recalled passages and the next message), and leaving room for the next
    turn's two messages under MAX_SESSION_MESSAGES."""
    persona_cost = counter.messages([{"role": "system", "content": persona}]) if persona else 0
    room = budget // 2 - persona_cost
    kept = used = 0
    for turn in reversed(split_turns(history)[-k:]):
        cost = counter.messages(turn)
        if used + cost > room or kept + len(turn) > max_messages - 2:
            break
        used += cost
        kept += len(turn)
    return len(history) - kept


def fold_batches(
    messages: Sequence[Message], *, budget: int, counter: TokenCounter
) -> list[list[Message]]:
    """`messages` cut at turn boundaries into batches of at most `budget` tokens each (a longer
    turn goes alone), so that each summarisation prompt stays small."""
    batches: list[list[Message]] = []
    used = 0
    for turn in split_turns(messages):
        cost = counter.messages(turn)
        if batches and used + cost <= budget:
            batches[-1] += turn
            used += cost
        else:
            batches.append(list(turn))
            used = cost
    return batches
