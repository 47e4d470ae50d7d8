"""OpenWebUI's background tasks: the title, tags, follow-up questions, search queries,
autocompletion, emoji and image prompts it asks a model for beside the user's chat. They quote
the chat inside one of OpenWebUI's prompt templates; a gateway that treats them as user turns
adds its persona, tools and context to them and makes them queue before the user's next
message. Each template is recognised by its opening (OpenWebUI 0.12.4's defaults, recorded in
tests/fixtures/openwebui/)."""

from __future__ import annotations

import re
from typing import Any

from app.chat.context import text_of

_OPENINGS = {
    "title": r"###\s*Task:\s*Generate a concise,?(?: 3-5 word)? title",
    "tags": r"###\s*Task:\s*Generate 1-3 broad tags",
    "follow_ups": r"###\s*Task:\s*(?:Suggest 3-5 relevant follow-up|Predict 3-5 useful messages)",
    "queries": r"###\s*Task:\s*Analyze the chat history to determine the necessity of "
    r"generating search queries",
    "autocomplete": r"###\s*Task:\s*You are an autocompletion system",
    "image_prompt": r"###\s*Task:\s*Generate a detailed prompt for a[mn]? image generation",
    "emoji": r"Your task is to reflect the speaker's likely facial expression",
    "moa": r"You have been provided with a set of responses from various models",
    "tool_choice": r"Available Tools:",
    "compaction": r"###\s*Task:\s*Summarize the conversation history that will be "
    r"compacted",
}
"""Each task's template, by how it opens."""
_TASK = re.compile(
    "|".join(f"(?P<{kind}>{opening})" for kind, opening in _OPENINGS.items()), re.IGNORECASE
)


def task_kind(messages: list[dict[str, Any]]) -> str | None:
    """The kind of OpenWebUI background task `messages` ask for, or None for a user's turn:
    the last message, or a leading system message, opens with one of the templates. Not every
    `### Task:` is a task: OpenWebUI puts its retrieval template, which starts so too, in front
    of a user's own message. Custom templates are told by the `X-OpenWebUI-Task` header."""
    for message in messages[-1:] + messages[:1]:
        if message.get("role") in _ROLES and (found := _TASK.match(text_of(message).lstrip())):
            return found.lastgroup
    return None


_ROLES = ("user", "system")
