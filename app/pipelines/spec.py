"""Pipelines defined in YAML (PIPELINES_FILE), checked at start-up: a definition that cannot run
is refused with the file, the line and the reason.

```yaml
pipelines:
  - id: brief                      # the model pipeline/brief
    description: Summarise, then check the summary
    steps:
      - name: summary
        prompt: Summarise the user's text in three sentences.
        model: ollama/llama3.2     # optional: DEFAULT_MODEL
        tools: [calculator]        # optional: the gateway's tools it may use
        max_tokens: 400            # optional
      - name: words
        function: my_package.steps:count_words   # StepInput -> str
        after: [summary]           # optional: the step before
      - name: answer               # the last step answers
        prompt: Answer from the summary and its word count.
        after: [summary, words]
```
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.config import ConfigError
from app.pipelines.agent import Agent
from app.pipelines.graph import GraphPipeline, Step, StepFunction

_ID = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"


class _StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID)
    prompt: str | None = Field(None, min_length=1)
    function: str | None = Field(None, pattern=r"^[\w.]+:[\w.]+$")
    model: str = ""
    tools: list[str] = []
    max_tokens: int = Field(1024, ge=1, le=65536)
    after: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> _StepSpec:
        if (self.prompt is None) == (self.function is None):
            raise ValueError("a step has either a prompt (an agent) or a function, not both")
        if self.function is not None and (self.model or self.tools):
            raise ValueError("a function step takes no model or tools")
        return self


class _PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    description: str = ""
    steps: list[_StepSpec] = Field(min_length=1)


class _FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipelines: list[_PipelineSpec] = Field(min_length=1)


def load_pipelines(path: Path) -> list[GraphPipeline]:
    """The pipelines of `path`. The tools they name are checked once the tools are loaded
    (`unknown_tools`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"PIPELINES_FILE {path}: cannot be read ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML: {reason}") from None
    if node is None:
        raise ConfigError(f"{path}, line 1: the file is empty; it needs a `pipelines:` list")
    data = yaml.SafeLoader(text).get_single_data()
    try:
        spec = _FileSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _line(node, error["loc"])
        field = ".".join(str(part) for part in error["loc"]) or "the file"
        raise ConfigError(f"{path}, line {where}: {field}: {_message(error)}") from None
    return list(_built(path, node, spec))


class _Where:
    """Refusals that name the file and the line of a place in it."""

    def __init__(self, path: Path, node: yaml.Node) -> None:
        self._path, self._node = path, node

    def at(self, loc: tuple[Any, ...]) -> str:
        return f"{self._path}, line {_line(self._node, loc)}"

    def refuse(self, loc: tuple[Any, ...], reason: str) -> ConfigError:
        return ConfigError(f"{self.at(loc)}: {reason}")


def unknown_tools(pipelines: Iterable[GraphPipeline], tools: Collection[str]) -> Iterator[str]:
    """A warning for each step that names tools not among `tools` (it runs without them)."""
    for pipeline in pipelines:
        for step in pipeline.graph:
            unknown = [] if step.agent is None else [t for t in step.agent.tools if t not in tools]
            if unknown:
                yield (
                    f"{step.at}: step {step.name!r} of pipeline {pipeline.id!r} names "
                    f"{', '.join(unknown)}, which no enabled tool is; it runs without them"
                )


def _built(path: Path, node: yaml.Node, spec: _FileSpec) -> Iterator[GraphPipeline]:
    where = _Where(path, node)
    seen: set[str] = set()
    for p, pipeline in enumerate(spec.pipelines):
        if pipeline.id in seen:
            raise where.refuse(("pipelines", p, "id"), f"two pipelines are named {pipeline.id!r}")
        seen.add(pipeline.id)
        steps: list[Step] = []
        for s, step in enumerate(pipeline.steps):
            steps.append(_step(step, steps, where, ("pipelines", p, "steps", s)))
        yield GraphPipeline(pipeline.id, pipeline.description, tuple(steps))


def _step(step: _StepSpec, before: list[Step], where: _Where, at: tuple[Any, ...]) -> Step:
    names = [done.name for done in before]
    if step.name in names:
        raise where.refuse((*at, "name"), f"two steps are named {step.name!r}")
    after = tuple(step.after if step.after is not None else names[-1:])
    for name in after:
        if name not in names:
            reason = f"step {step.name!r} comes after {name!r}, which is not a step before it"
            raise where.refuse((*at, "after"), reason)
    line = where.at(at)
    if step.function is not None:
        function = _imported(step.function, where, at)
        return Step(step.name, after, function=function, ref=step.function, at=line)
    assert step.prompt is not None
    agent = Agent(step.name, step.prompt, step.model, tuple(step.tools), step.max_tokens)
    return Step(step.name, after, agent=agent, at=line)


def _imported(ref: str, where: _Where, at: tuple[Any, ...]) -> StepFunction:
    module_name, _, name = ref.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in name.split("."):
            found = getattr(found, part)
    except Exception as exc:  # the user's module may fail in any way as it imports
        reason = f"function {ref!r} cannot be imported: {type(exc).__name__}: {exc}"
        raise where.refuse((*at, "function"), reason) from None
    if not callable(found):
        raise where.refuse((*at, "function"), f"{ref!r} is not a function")
    return found  # type: ignore[no-any-return]


def _line(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node of `node` that `loc` reaches."""
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _message(error: Any) -> str:
    if (
        error["type"] == "string_pattern_mismatch"
        and (error.get("ctx") or {}).get("pattern") == _ID
    ):
        return "must be lower-case letters, digits, '-', '_' or '.', 64 at most"
    return str(error["msg"]).removeprefix("Value error, ")
