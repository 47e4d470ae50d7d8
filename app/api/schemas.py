"""The wire's request shapes, lenient where OpenAI's clients differ and strict where a request
cannot work. Unknown fields are kept (and forwarded); explicit nulls mean "not given"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.errors import InvalidRequest

_M = TypeVar("_M", bound=BaseModel)
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list"})
_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
MAX_JSON_DEPTH = 128
"""Deepest nesting a request body may have: far more than any real request needs, and far
below the 254 levels past which orjson cannot serialise what the gateway forwards."""


def _named_by_type(value: object, info: ValidationInfo) -> object:
    """The field the entry's `type` names is required (`function`, or `custom`)."""
    if value is None and info.data.get("type", "function") == info.field_name:
        raise PydanticCustomError("missing", "Field required")
    return value


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class GatewayFlags(BaseModel):
    """The gateway's own fields, the same on every chat wire."""

    rag: StrictBool | None = None
    """False: no passages of the user's documents in this turn."""
    memory: StrictBool | None = None
    """False: the user's memories neither recalled nor changed by this turn."""


class FunctionCall(_Wire):
    name: str
    arguments: str = ""

    @model_validator(mode="before")
    @classmethod
    def _arguments_as_json(cls, data: object) -> object:
        """Some clients send `arguments` as an object; it is rewritten in place as the JSON
        string OpenAI specifies, so the body forwarded upstream carries the fix too."""
        if isinstance(data, dict) and isinstance(data.get("arguments"), dict):
            data["arguments"] = orjson.dumps(data["arguments"]).decode()
        return data


class CustomCall(_Wire):
    name: str
    input: str = ""


class ToolCall(_Wire):
    id: str | None = None
    type: Literal["function", "custom"] = "function"
    function: FunctionCall | None = Field(None, validate_default=True)
    custom: CustomCall | None = Field(None, validate_default=True)

    _called = field_validator("function", "custom")(_named_by_type)


class Message(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content")
    @classmethod
    def _parts(cls, content: str | list[dict[str, Any]] | None) -> object:
        if isinstance(content, list):
            for part in content:
                kind = part.get("type")
                if kind not in _PART_TYPES:
                    raise ValueError(
                        f"content part type {kind!r} is not one of {', '.join(sorted(_PART_TYPES))}"
                    )
                if kind == "text" and not isinstance(part.get("text"), str):
                    raise ValueError("a text content part needs a string 'text'")
                if kind == "image_url" and not isinstance(part.get("image_url"), dict | str):
                    raise ValueError("an image_url content part needs an 'image_url' object")
        return content

    @model_validator(mode="after")
    def _content_present(self) -> Message:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs 'content'")
        if self.content is None and not (self.tool_calls or self.model_extra):
            raise ValueError("an assistant message needs 'content' or 'tool_calls'")
        return self


class FunctionDef(_Wire):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class CustomDef(_Wire):
    """OpenAI's free-form tool: the model writes its `input` as text (in a `format`, when
    given: plain text or a grammar)."""

    name: str = Field(min_length=1)
    description: str | None = None
    format: dict[str, Any] | None = None


class Tool(_Wire):
    type: Literal["function", "custom"] = "function"
    function: FunctionDef | None = Field(None, validate_default=True)
    custom: CustomDef | None = Field(None, validate_default=True)

    _defined = field_validator("function", "custom")(_named_by_type)


class StreamOptions(_Wire):
    include_usage: bool | None = None


def _needs_stream(value: StreamOptions | None, info: ValidationInfo) -> object:
    if value is not None and not info.data.get("stream"):
        raise ValueError("stream_options is only allowed when stream is true")
    return value


class ChatCompletionRequest(_Wire, GatewayFlags):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | dict[str, Any] | None = None

    _stream_only = field_validator("stream_options")(_needs_stream)


class CompletionRequest(_Wire):
    """The legacy `/v1/completions` request. What the gateway cannot do is refused here, by name:
    token-id prompts, `echo`, `suffix`, `logprobs` and `best_of` above 1."""

    model: str | None = None
    prompt: str | list[str]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    logit_bias: dict[str, float] | None = None
    user: str | dict[str, Any] | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = Field(None, ge=1)

    @field_validator("prompt", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        if isinstance(value, list):
            if not value:
                raise ValueError("prompt must not be an empty list")
            if not all(isinstance(item, str) for item in value):
                raise ValueError(
                    "prompts as token ids are not supported: send the prompt as text "
                    "(a string or a list of strings)"
                )
        return value

    _stream_only = field_validator("stream_options")(_needs_stream)

    @field_validator("stop")
    @classmethod
    def _four_stops(cls, value: str | list[str] | None) -> object:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("echo", "suffix", "logprobs", "best_of")
    @classmethod
    def _refused(cls, value: object, info: ValidationInfo) -> object:
        refused, why = _REFUSED[str(info.field_name)]
        if refused(value):
            raise ValueError(why)
        return value


_REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "echo": (bool, "echo is not supported: the answer holds only the completion"),
    "suffix": (bool, "suffix (fill in the middle) is not supported"),
    "logprobs": (lambda v: v is not None, "logprobs are not supported on /v1/completions"),
    "best_of": (
        lambda v: v is not None and v > 1,
        "best_of above 1 is not supported: ask for n choices instead",
    ),
}
"""What `/v1/completions` refuses, by field: when, and why."""


class EmbeddingRequest(_Wire):
    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | dict[str, Any] | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(
        cls, value: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        items = value if isinstance(value, list) else [value]
        if not items or any(item in ("", []) for item in items):
            raise ValueError("input must not be empty, nor contain an empty string or token list")
        return value


def parse_json(raw: bytes) -> dict[str, Any]:
    """The JSON object `raw` holds, nested at most `MAX_JSON_DEPTH` levels deep, else a 400."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    # Only a body with that many brackets can be that deep: most are not walked at all.
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _deeper_than(data, MAX_JSON_DEPTH):
        raise InvalidRequest(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def _deeper_than(data: dict[str, Any], limit: int) -> bool:
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def validate(schema: type[_M], data: dict[str, Any]) -> _M:
    """`data` as `schema`, or a 400 naming the first bad field the way OpenAI does."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = _param(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = f"'{param}' is a required property"
        elif param:
            message = f"Invalid '{param}': {message}"
        raise InvalidRequest(message, param=param or None) from None


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and part not in _UNION_TAGS:
            out += f".{part}" if out else part
    return out
