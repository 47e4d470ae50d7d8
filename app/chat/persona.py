"""The persona: the system prompt and style applied to every orchestrated turn."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from app.config import ConfigError

log = logging.getLogger(__name__)


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "assistant"
    system_prompt: str = ""
    style: list[str] = []

    @cached_property
    def _text(self) -> str:
        parts = [self.system_prompt.strip()] if self.system_prompt.strip() else []
        if self.style:
            parts.append("Style:\n" + "\n".join(f"- {rule}" for rule in self.style))
        return "\n\n".join(parts)

    def instructions(self) -> str:
        return self._text

    def apply(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages with the persona's instructions first: merged into the client's own
        leading system message when it has one (many chat templates take only one)."""
        text = self._text
        if not text:
            return messages
        if messages and messages[0].get("role") in ("system", "developer"):
            head = messages[0]
            content = head.get("content")
            if isinstance(content, str):
                return [{**head, "content": f"{text}\n\n{content}"}, *messages[1:]]
            if isinstance(content, list):
                merged = [{"type": "text", "text": text}, *content]
                return [{**head, "content": merged}, *messages[1:]]
        return [{"role": "system", "content": text}, *messages]


def load_persona(path: Path) -> Persona:
    """The persona in `path`; a missing file means no persona, a bad one stops startup."""
    if not path.exists():
        log.warning("no persona file at %s: turns get no persona system prompt", path)
        return Persona()
    try:
        return Persona.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"persona file {path} is invalid: {problems}") from None
    except OSError as exc:
        raise ConfigError(f"persona file {path} cannot be read: {exc}") from None
