"""A tool is a plain async function: its name, signature and docstring become what the model
reads (name, JSON schema, description), and the signature validates the arguments it is called
with.

    async def weather(location: str, days: int = 1) -> dict[str, Any]:
        \"\"\"Current weather and a forecast for a place.

        Args:
            location: a place name, such as "Paris" or "Springfield, Illinois".
            days: forecast days, 1 to 7.
        \"\"\"

A tool returns JSON-able data (or a string). It raises `InvalidRequest(param=...)` for bad input
and `ToolError` when its own service fails; the registry bounds its time.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from app.errors import InvalidRequest

ToolFunction = Callable[..., Awaitable[Any]]

_ARGS_HEADER = re.compile(r"^(?:Args|Arguments|Parameters):\s*$", re.MULTILINE)
_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction
    arguments: type[BaseModel]

    @classmethod
    def from_function(cls, function: ToolFunction, name: str | None = None) -> Tool:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"tool {function.__name__!r} must be an async function")
        summary, arg_docs = _parse_docstring(inspect.getdoc(function) or "")
        hints = get_type_hints(function, include_extras=True)
        fields: dict[str, Any] = {}
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {function.__name__!r}: *args and **kwargs have no schema")
            annotation = hints.get(param.name, str)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, default)
        tool_name = name or function.__name__
        model = create_model(
            f"{tool_name}_arguments", __config__=ConfigDict(extra="ignore"), **fields
        )
        schema = _clean(model.model_json_schema())
        for arg, text in arg_docs.items():
            if arg in schema.get("properties", {}):
                schema["properties"][arg]["description"] = text
        schema.setdefault("properties", {})
        return cls(tool_name, summary, schema, function, model)

    def schema(self) -> dict[str, Any]:
        """The tool as OpenAI's `tools` entries describe a function."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def parse(self, arguments: str | dict[str, Any] | None) -> dict[str, Any]:
        """Validated keyword arguments from a model's JSON string or a dict; `InvalidRequest`
        naming the first bad argument otherwise."""
        if isinstance(arguments, str):
            try:
                arguments = orjson.loads(arguments) if arguments.strip() else {}
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(
                    f"the arguments of {self.name} are not valid JSON: {exc}", param="arguments"
                ) from None
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise InvalidRequest(
                f"the arguments of {self.name} must be a JSON object", param="arguments"
            )
        try:
            validated = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "arguments"
            raise InvalidRequest(
                f"{self.name}: argument '{field}': {error['msg']}", param=field
            ) from None
        return {name: getattr(validated, name) for name in type(validated).model_fields}


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (everything before an `Args:` section) and each argument's text."""
    head, *rest = _ARGS_HEADER.split(doc, maxsplit=1)
    described: dict[str, str] = {}
    current = None
    for line in (rest[0] if rest else "").splitlines():
        match = _ARG_LINE.match(line)
        if match and (current is None or not line.startswith(" " * 8)):
            current = match.group(1)
            described[current] = match.group(2).strip()
        elif current and line.strip():
            described[current] += " " + line.strip()
    return " ".join(head.split()), described


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's schema without the titles models do not need."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema
