"""The router pipeline's intents, read from YAML (INTENTS_FILE, else the support-desk set shipped
as `intents.yaml` beside this module, which documents the schema). Each intent has a name, a
description, example utterances, optional patterns (regular expressions, case-insensitive) and
one target: a pipeline, a specialist's system prompt, a model, or an escalation message; an
urgent intent escalates. A file that cannot work is refused with a `ConfigError` naming the
file, the line and the reason.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

import yaml

from app.config import ConfigError

DEFAULT_FILE = Path(__file__).with_name("intents.yaml")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's, where PyYAML was built with it: it reads the shipped file's 2519 examples in 9 ms
at start, the Python one in 145."""

TargetKind = Literal["pipeline", "prompt", "model", "escalate"]
TARGETS: tuple[TargetKind, ...] = get_args(TargetKind)
_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_INTENT_FIELDS = ("name", "description", "examples", "patterns", "urgent", *TARGETS)
_THRESHOLDS = ("match", "margin", "floor", "switch", "neighbours")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message of the intent goes: `kind` is pipeline, prompt, model or escalate, and
    `value` the pipeline's id, the system prompt, the model's id or the escalation message."""

    kind: TargetKind
    value: str


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    description: str
    examples: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    target: Target
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The embedding stage's: an intent's score is a probability (the classifier's module says
    how it is made); the best intent is decided when its score reaches `match` and leads every
    other by `margin`. An intent's similarity is the mean cosine similarity of its `neighbours`
    nearest examples; when none reaches `floor`, the message names no intent. A conversation
    leaves its current intent only for one whose score reaches `switch`."""

    match: float = 0.3
    margin: float = 0.02
    floor: float = 0.26
    switch: float = 0.75
    neighbours: int = 3


@dataclass(frozen=True, slots=True)
class IntentSet:
    intents: tuple[Intent, ...]
    fallback: str
    thresholds: Thresholds
    source: str
    """The file it was read from."""
    digest: str
    """SHA-256 of the file's text: the classifier's cached verdicts are for this set only."""

    def __getitem__(self, name: str) -> Intent:
        for intent in self.intents:
            if intent.name == name:
                return intent
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(intent.name == name for intent in self.intents)

    def __iter__(self) -> Iterator[Intent]:
        return iter(self.intents)

    @property
    def names(self) -> list[str]:
        return [intent.name for intent in self.intents]


def load_intents(path: Path | None = None) -> IntentSet:
    """The intents of `path` (None: the default set)."""
    path = path or DEFAULT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"intents file {path} cannot be read: {exc}") from None
    return _Reader(str(path)).read(text)


class _Reader:
    """Reads the YAML node tree, which knows each value's line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._scalars = yaml.constructor.SafeConstructor()
        self._examples: dict[str, tuple[str, int]] = {}
        """Each example seen (case and spacing folded): its intent and line."""

    def fail(self, node: yaml.Node | None, reason: str) -> NoReturn:
        line = f", line {node.start_mark.line + 1}" if node is not None else ""
        raise ConfigError(f"intents file {self.source}{line}: {reason}")

    def read(self, text: str) -> IntentSet:
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f", line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"intents file {self.source}{line}: not valid YAML: {exc.problem or exc}"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"intents file {self.source}: not valid YAML: {exc}") from None
        if root is None:
            self.fail(None, "the file is empty; it needs `fallback` and `intents`")
        top = self.mapping(root, "the file", ("fallback", "thresholds", "intents"))
        for required in ("fallback", "intents"):
            if required not in top:
                self.fail(root, f"`{required}` is missing")
        intents_node = top["intents"]
        if not isinstance(intents_node, yaml.SequenceNode) or not intents_node.value:
            self.fail(intents_node, "`intents` must be a non-empty list of intents")
        intents: list[Intent] = []
        for node in intents_node.value:
            intent = self.intent(node)
            if intent.name in (known.name for known in intents):
                self.fail(node, f"a second intent named {intent.name!r}")
            intents.append(intent)
        fallback = self.text(top["fallback"], "`fallback`")
        if fallback not in (intent.name for intent in intents):
            self.fail(top["fallback"], f"`fallback` {fallback!r} is not one of the intents")
        chosen = next(intent for intent in intents if intent.name == fallback)
        if chosen.urgent:
            self.fail(top["fallback"], f"the fallback intent {fallback!r} cannot be urgent")
        thresholds = self.thresholds(top["thresholds"]) if "thresholds" in top else Thresholds()
        digest = hashlib.sha256(text.encode()).hexdigest()
        return IntentSet(tuple(intents), fallback, thresholds, self.source, digest)

    def intent(self, node: yaml.Node) -> Intent:
        fields = self.mapping(node, "an intent", _INTENT_FIELDS)
        if "name" not in fields:
            self.fail(node, "an intent without a `name`")
        name = self.text(fields["name"], "`name`")
        if not _NAME.fullmatch(name):
            self.fail(fields["name"], f"the name {name!r} must match {_NAME.pattern}")
        where = f"intent {name!r}"
        if "description" not in fields:
            self.fail(node, f"{where} has no `description`")
        targets = [kind for kind in TARGETS if kind in fields]
        if len(targets) != 1:
            found = ", ".join(targets) or "none"
            self.fail(node, f"{where} needs exactly one target of {', '.join(TARGETS)} ({found})")
        kind = targets[0]
        urgent = self.flag(fields["urgent"], "`urgent`") if "urgent" in fields else False
        if urgent and kind != "escalate":
            self.fail(fields["urgent"], f"{where} is urgent: its target must be `escalate`")
        examples = [self.example(item, name) for item in self.items(fields.get("examples"))]
        patterns = tuple(self.pattern(item) for item in self.items(fields.get("patterns")))
        return Intent(
            name=name,
            description=self.text(fields["description"], "`description`"),
            examples=tuple(examples),
            patterns=patterns,
            target=Target(kind, self.text(fields[kind], f"`{kind}`")),
            urgent=urgent,
        )

    def thresholds(self, node: yaml.Node) -> Thresholds:
        fields = self.mapping(node, "`thresholds`", _THRESHOLDS)
        values: dict[str, Any] = {}
        for name in ("match", "margin", "floor", "switch"):
            if name in fields:
                value = self.scalar(fields[name])
                if isinstance(value, bool) or not isinstance(value, int | float):
                    self.fail(fields[name], f"`{name}` must be a number (got {value!r})")
                if not 0 <= value <= 1:
                    self.fail(fields[name], f"`{name}` must be between 0 and 1 (got {value})")
                values[name] = float(value)
        if "neighbours" in fields:
            value = self.scalar(fields["neighbours"])
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self.fail(fields["neighbours"], f"`neighbours` must be an integer >= 1 ({value!r})")
            values["neighbours"] = value
        thresholds = Thresholds(**values)
        if thresholds.floor > thresholds.match:
            self.fail(node, f"`floor` ({thresholds.floor}) is above `match` ({thresholds.match})")
        return thresholds

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if key not in allowed:
                self.fail(key_node, f"unknown field {key!r} (allowed: {', '.join(allowed)})")
            if key in fields:
                self.fail(key_node, f"{key!r} is given twice")
            fields[key] = value_node
        return fields

    def items(self, node: yaml.Node | None) -> list[yaml.Node]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, "must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, "must be a single value, not a list or a mapping")
        return self._scalars.construct_object(node)

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node)
        if not isinstance(value, str) or not value.strip():
            self.fail(node, f"{what} must be a non-empty string (got {value!r})")
        return value.strip()

    def example(self, node: yaml.Node, intent: str) -> str:
        """An example given twice, or to two intents, would pull a message both ways."""
        example = self.text(node, "each of `examples`")
        key = " ".join(example.casefold().split())
        if key in self._examples:
            owner, line = self._examples[key]
            self.fail(
                node, f"the example {example!r} is given already, to {owner!r} on line {line}"
            )
        self._examples[key] = (intent, node.start_mark.line + 1)
        return example

    def flag(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node)
        if not isinstance(value, bool):
            self.fail(node, f"{what} must be true or false (got {value!r})")
        return value

    def pattern(self, node: yaml.Node) -> re.Pattern[str]:
        source = self.text(node, "each of `patterns`")
        try:
            return re.compile(source, re.IGNORECASE)
        except re.error as exc:
            self.fail(node, f"the pattern {source!r} is not a regular expression: {exc}")
