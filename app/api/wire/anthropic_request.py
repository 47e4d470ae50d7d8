"""The Anthropic Messages API's request, read into the chat-completions body the turn engine
takes.

`system` becomes the system message; each message's blocks become chat messages: `text` and
`image` blocks content parts (a lone text block plain content), an assistant's `tool_use`
blocks its `tool_calls`, a user's `tool_result` blocks `role: "tool"` messages ahead of the rest
of that user message (a result's images go into it, since a tool message holds only text), and
the client's `thinking` blocks are dropped. `tools` become functions, `tool_choice` the chat
tool choice (`any` is "required") and `disable_parallel_tool_use` `parallel_tool_calls: false`,
`stop_sequences` `stop`, `metadata.user_id` `user`, `output_config.format` (a JSON schema)
`response_format`; `top_k` and `output_config.effort` have no equivalent and are dropped.
The server tools Anthropic runs itself (web search, bash, ...) are refused with a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas import GatewayFlags
from app.errors import InvalidRequest

Json = dict[str, Any]
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class MessageParam(_Wire):
    role: Literal["user", "assistant"]
    content: str | list[Json]


class ToolParam(_Wire):
    name: str = Field(min_length=1)
    type: str | None = None
    description: str | None = None
    input_schema: Json | None = None


class ToolChoice(_Wire):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError("a tool_choice of type 'tool' needs the tool's 'name'")
        return self


class Thinking(_Wire):
    type: str
    budget_tokens: int | None = None


class Metadata(_Wire):
    user_id: str | None = None


class OutputFormat(_Wire):
    type: Literal["json_schema"]
    json_schema: Json = Field(alias="schema")


class OutputConfig(_Wire):
    format: OutputFormat | None = None


class TokenCountRequest(_Wire):
    """What `/v1/messages/count_tokens` reads: the conversation of a Messages request."""

    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[Json] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None


class MessagesRequest(TokenCountRequest, GatewayFlags):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    body: Json
    """The chat-completions request."""
    stream: bool
    thinking: bool
    """Whether the client asked for thinking, so that the answer's reasoning is shown to it."""


def decode(req: MessagesRequest) -> Decoded:
    """The chat-completions request of `req`; a 400 naming the field for what has none."""
    body = conversation(req)
    body["max_tokens"] = req.max_tokens
    if req.stop_sequences:
        body["stop"] = req.stop_sequences
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.metadata is not None and req.metadata.user_id:
        body["user"] = req.metadata.user_id
    if req.output_config is not None and req.output_config.format is not None:
        schema = {"name": "output", "schema": req.output_config.format.json_schema}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    if req.stream:
        body["stream"] = True
    for flag, value in (("rag", req.rag), ("memory", req.memory)):
        if value is not None:
            body[flag] = value
    thinking = req.thinking is not None and req.thinking.type != "disabled"
    return Decoded(body, stream=bool(req.stream), thinking=thinking)


def conversation(req: TokenCountRequest) -> Json:
    """`model`, `messages` and the tools of `req` as a chat-completions request."""
    messages: list[Json] = []
    if req.system:
        messages.append({"role": "system", "content": _system(req.system)})
    for i, message in enumerate(req.messages):
        messages.extend(_messages(message, f"messages[{i}]"))
    body: Json = {"model": req.model, "messages": messages}
    if req.tools:
        body["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(req.tools)]
        if req.tool_choice is not None:
            body.update(_tool_choice(req.tool_choice, {tool.name for tool in req.tools}))
    return body


def _system(system: str | list[Json]) -> str:
    if isinstance(system, str):
        return system
    texts = []
    for i, block in enumerate(system):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(
                "a system block must be a text block ({type: 'text', text})",
                param=f"system[{i}]",
            )
        texts.append(block["text"])
    return "\n\n".join(texts)


def _messages(message: MessageParam, param: str) -> list[Json]:
    """The chat messages of one Anthropic message."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    if message.role == "assistant":
        return [_assistant(message.content, param)]
    results: list[Json] = []
    shown: list[Json] = []  # the results' images
    parts: list[Json] = []
    for j, block in enumerate(message.content):
        where = f"{param}.content[{j}]"
        kind = _kind(block, where)
        if kind == "text":
            parts.append(_text(block, where))
        elif kind == "image":
            parts.append(_image(block, where))
        elif kind == "tool_result":
            result, images = _tool_result(block, where)
            results.append(result)
            shown.extend(images)
        elif kind not in _DROPPED_BLOCKS:
            raise _unsupported(kind, where, "text, image, tool_result")
    if shown or parts or not results:
        results.append({"role": "user", "content": _content(shown + parts)})
    return results


def _assistant(blocks: list[Json], param: str) -> Json:
    parts: list[Json] = []
    calls: list[Json] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content[{j}]"
        kind = _kind(block, where)
        if kind == "text":
            parts.append(_text(block, where))
        elif kind == "tool_use":
            calls.append(_tool_use(block, where))
        elif kind not in _DROPPED_BLOCKS:
            raise _unsupported(kind, where, "text, tool_use, thinking")
    message: Json = {"role": "assistant", "content": _content(parts) if parts else None}
    if calls:
        message["tool_calls"] = calls
    elif not parts:
        message["content"] = ""
    return message


def _content(parts: list[Json]) -> str | list[Json]:
    """A lone text part as plain content, which every upstream takes."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _kind(block: Json, where: str) -> str:
    kind = block.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest("a content block needs a string 'type'", param=f"{where}.type")
    return kind


def _unsupported(kind: str, where: str, supported: str) -> InvalidRequest:
    return InvalidRequest(
        f"content blocks of type '{kind}' are not supported here; this gateway takes {supported}",
        param=f"{where}.type",
    )


def _text(block: Json, where: str) -> Json:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest("a text block needs a string 'text'", param=f"{where}.text")
    return {"type": "text", "text": text}


def _image(block: Json, where: str) -> Json:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    elif kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise InvalidRequest(
        "an image block needs a source {type: 'base64', media_type, data} or {type: 'url', url}",
        param=f"{where}.source",
    )


def _tool_use(block: Json, where: str) -> Json:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    for field, value in (("id", call_id), ("name", name)):
        if not isinstance(value, str) or not value:
            raise InvalidRequest(
                f"a tool_use block needs a string '{field}'", param=f"{where}.{field}"
            )
    if not isinstance(arguments, dict):
        raise InvalidRequest("a tool_use block's 'input' must be an object", param=f"{where}.input")
    function = {"name": name, "arguments": orjson.dumps(arguments).decode()}
    return {"id": call_id, "type": "function", "function": function}


def _tool_result(block: Json, where: str) -> tuple[Json, list[Json]]:
    """The tool message of a `tool_result` block, and the images it holds."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(
            "a tool_result block needs a string 'tool_use_id'", param=f"{where}.tool_use_id"
        )
    content = block.get("content", "")
    texts: list[str] = []
    images: list[Json] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, part in enumerate(content):
            inner = f"{where}.content[{k}]"
            kind = _kind(part, inner) if isinstance(part, dict) else None
            if kind == "text":
                texts.append(_text(part, inner)["text"])
            elif kind == "image":
                images.append(_image(part, inner))
            else:
                raise _unsupported(str(kind), inner, "text, image")
    else:
        raise InvalidRequest(
            "a tool_result's 'content' must be a string or a list of blocks",
            param=f"{where}.content",
        )
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _tool(tool: ToolParam, param: str) -> Json:
    if tool.type not in (None, "custom"):
        raise InvalidRequest(
            f"tools of type '{tool.type}' (run by Anthropic's servers) are not supported by this "
            "gateway; send custom tools: {name, description, input_schema}",
            param=f"{param}.type",
        )
    if tool.input_schema is None:
        raise InvalidRequest(
            f"'{param}.input_schema' is a required property", param=f"{param}.input_schema"
        )
    function: Json = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice, names: set[str]) -> Json:
    out: Json = {}
    match choice.type:
        case "auto" | "none":
            out["tool_choice"] = choice.type
        case "any":
            out["tool_choice"] = "required"
        case "tool":
            if choice.name not in names:
                raise InvalidRequest(
                    f"tool_choice names '{choice.name}', which is not one of the request's tools",
                    param="tool_choice.name",
                )
            out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    if choice.disable_parallel_tool_use and choice.type != "none":
        out["parallel_tool_calls"] = False
    return out
