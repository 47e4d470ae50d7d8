"""OpenAI's Responses request read as the chat-completions body the turn engine takes.

`input` (a string, or a list of items) is normalised first: every item gets its `type`, an id and
its content as a list of parts, the shape in which the conversation is stored for
`previous_response_id`. Normalised items, the request's and the stored ones, then become chat
messages: `message` items as they are, `function_call` items as an assistant message's
`tool_calls` (consecutive calls in one message), `function_call_output` items as `role: "tool"`
messages; `reasoning` items, the model's own given back, are left out. `instructions` go first as
a system message, and are not stored.

Function tools and OpenAI's free-form `custom` tools can be offered (their calls and outputs
given back as `custom_tool_call` and `custom_tool_call_output` items); OpenAI's built-in tools
(web search, file search, computer use, ...) are a 400 naming the field, as is anything else the
gateway cannot do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import ConfigDict, Field

from app.api.schemas import GatewayFlags, validate
from app.errors import InvalidRequest
from app.ids import new_id

Item = dict[str, Any]
Message = dict[str, Any]

RESPONSE_ID = r"^[A-Za-z0-9_\-]{1,128}$"
"""What a response id may look like: the gateway's are `resp_` and hex digits."""
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TOOL_CHOICES = frozenset({"auto", "none", "required"})
_ITEM_TYPES = (
    "message, function_call, function_call_output, custom_tool_call, custom_tool_call_output "
    "and reasoning"
)
_CALLS = {"function_call": "arguments", "custom_tool_call": "input"}
"""The tool call items, and the field that holds what the model wrote."""
_OUTPUTS = ("function_call_output", "custom_tool_call_output")
_CHAT_KIND = {"function_call": "function", "custom_tool_call": "custom"}
_NOT_SUPPORTED = {
    "conversation": "conversations are not supported; chain responses with previous_response_id",
    "prompt": "stored prompt templates are not supported; send instructions and input",
}


class ResponsesRequest(GatewayFlags):
    """The fields the gateway reads; others (`safety_identifier`, `prompt_cache_key`,
    `stream_options`, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = None
    metadata: dict[str, str] | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = Field(None, pattern=RESPONSE_ID)
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    service_tier: str | None = None
    max_tool_calls: int | None = Field(None, ge=1)
    background: bool | None = None
    cache: bool | None = None
    """The gateway's own: `true` serves the answer from the response cache when it can be."""


@dataclass(frozen=True, slots=True)
class Decoded:
    request: ResponsesRequest
    items: list[Item]
    """The request's input, normalised."""
    fields: dict[str, Any]
    """The chat body but for its messages."""
    instructions: list[Message]
    echo: dict[str, Any]
    """The request's fields as the response repeats them."""

    @property
    def store(self) -> bool:
        return self.request.store is not False

    @property
    def custom_tools(self) -> bool:
        return any(tool["type"] == "custom" for tool in self.fields.get("tools") or ())

    def chat_body(self, conversation: list[Item]) -> dict[str, Any]:
        """The chat request of `conversation` (normalised items, the stored ones first)."""
        messages = to_messages(conversation)
        if not messages:
            raise InvalidRequest("'input' must hold at least one message", param="input")
        return {**self.fields, "messages": [*self.instructions, *messages]}


def decode(body: dict[str, Any]) -> Decoded:
    """The Responses request `body`, checked: a 400 naming the field for anything wrong or
    unsupported."""
    req = validate(ResponsesRequest, body)
    for name, why in _NOT_SUPPORTED.items():
        if body.get(name) is not None:
            raise InvalidRequest(why, param=name)
    if req.background:
        raise InvalidRequest("background responses are not supported", param="background")
    items = [] if req.input is None else normalise(req.input, "input")
    instructions: list[Message] = []
    if isinstance(req.instructions, str):
        instructions = [{"role": "system", "content": req.instructions}]
    elif req.instructions:
        instructions = to_messages(normalise(req.instructions, "instructions"))
    return Decoded(req, items, _fields(req), instructions, _echo(req))


def _fields(req: ResponsesRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {"model": req.model, "stream": bool(req.stream)}
    if req.tools:
        fields["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(req.tools)]
        if req.parallel_tool_calls is not None:
            fields["parallel_tool_calls"] = req.parallel_tool_calls
    if req.tool_choice is not None:
        fields["tool_choice"] = _tool_choice(req.tool_choice)
    if (fmt := _response_format((req.text or {}).get("format"))) is not None:
        fields["response_format"] = fmt
    optional = {
        "max_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "user": req.user,
        "cache": req.cache,
        "rag": req.rag,
        "memory": req.memory,
    }
    fields.update((name, value) for name, value in optional.items() if value is not None)
    return fields


_TOOL_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "function": (("description", str), ("parameters", dict), ("strict", bool)),
    "custom": (("description", str), ("format", dict)),
}


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    kind = tool.get("type")
    if kind not in _TOOL_FIELDS:
        raise InvalidRequest(
            f"tool type {kind!r} is not supported: only function and custom tools are (the "
            "gateway runs its own tools, such as web search, by itself)",
            param=f"{where}.type",
        )
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"a {kind} tool needs a 'name'", param=f"{where}.name")
    definition: dict[str, Any] = {"name": name}
    for field, kinds in _TOOL_FIELDS[kind]:
        value = tool.get(field)
        if value is None:
            continue
        if not isinstance(value, kinds):
            raise InvalidRequest(f"'{field}' must be a {kinds.__name__}", param=f"{where}.{field}")
        definition[field] = value
    return {"type": kind, kind: definition}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise InvalidRequest(
                f"tool_choice {choice!r} is not one of auto, none, required", param="tool_choice"
            )
        return choice
    name, kind = choice.get("name"), choice.get("type")
    if kind not in ("function", "custom") or not isinstance(name, str) or not name:
        raise InvalidRequest(
            'tool_choice must be auto, none, required or {"type": "function" or "custom", '
            '"name": ...}',
            param="tool_choice",
        )
    return {"type": kind, kind: {"name": name}}


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise InvalidRequest(
            "text.format must be of type text, json_object or json_schema", param="text.format.type"
        )
    if not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest("a json_schema format needs a 'schema'", param="text.format.schema")
    schema: dict[str, Any] = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
    for field in ("description", "strict"):
        if fmt.get(field) is not None:
            schema[field] = fmt[field]
    return {"type": "json_schema", "json_schema": schema}


def _echo(req: ResponsesRequest) -> dict[str, Any]:
    text = dict(req.text or {})
    text.setdefault("format", {"type": "text"})
    return {
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "metadata": req.metadata or {},
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": req.previous_response_id,
        "reasoning": req.reasoning or {"effort": None, "summary": None},
        "service_tier": req.service_tier or "default",
        "store": req.store is not False,
        "temperature": req.temperature,
        "text": text,
        "tool_choice": req.tool_choice or "auto",
        "tools": req.tools or [],
        "top_logprobs": req.top_logprobs,
        "top_p": req.top_p,
        "truncation": req.truncation or "disabled",
        "user": req.user,
    }


# --- input items ------------------------------------------------------------------------------


def normalise(raw: str | list[dict[str, Any]], param: str) -> list[Item]:
    """`raw` (an `input` or `instructions`) as normalised items; `reasoning` items left out."""
    if isinstance(raw, str):
        return [_message_item("user", raw, param)]
    items: list[Item] = []
    for i, item in enumerate(raw):
        where = f"{param}[{i}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            items.append(_message_item(item.get("role"), item.get("content"), where, item))
        elif kind in _CALLS:
            items.append(_call(kind, item, where))
        elif kind in _OUTPUTS:
            items.append(_call_output(kind, item, where))
        elif kind is None:
            raise InvalidRequest(
                "an input item needs a 'type' (or a 'role', for a message)", param=f"{where}.type"
            )
        elif kind != "reasoning":
            raise InvalidRequest(
                f"input items of type {kind!r} are not supported; the gateway takes {_ITEM_TYPES}",
                param=f"{where}.type",
            )
    return items


def _item_id(item: Item, prefix: str) -> str:
    given = item.get("id")
    return given if isinstance(given, str) and given else new_id(prefix)


def _text_of(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"'{field}' must be a string", param=f"{where}.{field}")
    return value


def _message_item(role: Any, content: Any, where: str, item: Item | None = None) -> Item:
    if role not in _ROLES:
        raise InvalidRequest(
            f"role {role!r} is not one of assistant, developer, system, user", param=f"{where}.role"
        )
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        parts = [_part({"type": kind, "text": content}, where)]
    elif isinstance(content, list):
        parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    else:
        raise InvalidRequest(
            "'content' must be a string or a list of content parts", param=f"{where}.content"
        )
    return {
        "id": _item_id(item or {}, "msg_"),
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "input_text":
        return {"type": kind, "text": _text_of(part.get("text"), "text", where)}
    if kind == "output_text":
        text = _text_of(part.get("text"), "text", where)
        return {"type": kind, "text": text, "annotations": []}
    if kind == "refusal":
        return {"type": kind, "refusal": _text_of(part.get("refusal"), "refusal", where)}
    if kind == "input_image":
        if part.get("image_url") is None and part.get("file_id") is not None:
            raise InvalidRequest(
                "images by file_id are not supported (the gateway has no Files API); send an "
                "image_url, a URL or a data: URL",
                param=f"{where}.file_id",
            )
        url = _text_of(part.get("image_url"), "image_url", where)
        return {"type": kind, "image_url": url, "detail": part.get("detail") or "auto"}
    if kind == "input_file":
        if part.get("file_data") is None:
            raise InvalidRequest(
                "files are only taken inline, as file_data (the gateway has no Files API)",
                param=f"{where}.file_data",
            )
        data = _text_of(part.get("file_data"), "file_data", where)
        return {"type": kind, "file_data": data, "filename": part.get("filename") or "file"}
    raise InvalidRequest(
        f"content part type {kind!r} is not one of input_text, output_text, refusal, "
        "input_image, input_file",
        param=f"{where}.type",
    )


def _call_id(item: Item, where: str) -> str:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest("'call_id' is required", param=f"{where}.call_id")
    return call_id


def _call(kind: str, item: Item, where: str) -> Item:
    """A `function_call` (its `arguments`; an object is taken as its JSON) or a
    `custom_tool_call` (its free-form `input`)."""
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'name' is required", param=f"{where}.name")
    field = _CALLS[kind]
    written = item.get(field)
    if isinstance(written, dict):
        written = orjson.dumps(written).decode()
    elif written is None:
        written = "{}" if kind == "function_call" else ""
    call = {
        "id": _item_id(item, "fc_" if kind == "function_call" else "ctc_"),
        "type": kind,
        "call_id": _call_id(item, where),
        "name": name,
        field: _text_of(written, field, where),
    }
    if kind == "function_call":
        call["status"] = "completed"
    return call


def _call_output(kind: str, item: Item, where: str) -> Item:
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
                raise InvalidRequest(
                    f"a {kind} can only hold text (images and files are not supported in "
                    "tool results)",
                    param=f"{where}.output[{j}]",
                )
            texts.append(_text_of(part.get("text"), "text", f"{where}.output[{j}]"))
        output = "".join(texts)
    normalised = {
        "id": _item_id(item, "fco_" if kind == "function_call_output" else "ctco_"),
        "type": kind,
        "call_id": _call_id(item, where),
        "output": _text_of(output, "output", where),
    }
    if kind == "function_call_output":
        normalised["status"] = "completed"
    return normalised


# --- normalised items as chat messages ----------------------------------------------------------


def to_messages(items: list[Item]) -> list[Message]:
    """Normalised items (the request's, stored ones, a response's output) as chat messages."""
    messages: list[Message] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": _content(item)})
        elif kind in _CALLS:
            chat_kind, field = _CHAT_KIND[kind], _CALLS[kind]
            call = {
                "id": item["call_id"],
                "type": chat_kind,
                chat_kind: {"name": item["name"], field: item[field]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in _OUTPUTS:
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
    return messages


def _content(message: Item) -> str | list[dict[str, Any]]:
    """An assistant's parts as its text; others' as a string when they are one text, else as
    chat content parts."""
    parts: list[dict[str, Any]] = message["content"]
    if message["role"] == "assistant":
        return "".join(part.get("text") or part.get("refusal") or "" for part in parts)
    if len(parts) == 1 and "text" in parts[0]:
        text: str = parts[0]["text"]
        return text
    return [_chat_part(part) for part in parts]


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "input_image":
        image = {"url": part["image_url"], "detail": part["detail"]}
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        return {
            "type": "file",
            "file": {"file_data": part["file_data"], "filename": part["filename"]},
        }
    return {"type": "text", "text": part.get("text") or part.get("refusal") or ""}
