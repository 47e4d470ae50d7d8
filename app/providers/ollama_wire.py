"""Pure conversions between OpenAI chat bodies and Ollama's native `/api/chat` (no I/O here)."""

from __future__ import annotations

import base64
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

import orjson

from app.errors import InvalidRequest
from app.ids import new_id
from app.providers.base import Chunk

_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


class Request(Protocol):
    """`chat_request` or `generate_request`: Ollama's body for an OpenAI one."""

    def __call__(
        self, model: str, body: dict[str, Any], *, num_ctx: int | None, keep_alive: str | None
    ) -> dict[str, Any]: ...


def chat_request(
    model: str, body: dict[str, Any], *, num_ctx: int | None, keep_alive: str | None
) -> dict[str, Any]:
    """The `/api/chat` body for an OpenAI chat request."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": convert_messages(body.get("messages") or []),
        "stream": True,
    }
    tools = body.get("tools")
    # Ollama has no tool_choice; "none" is honoured by not offering the tools at all.
    if tools and body.get("tool_choice") != "none":
        payload["tools"] = tools
    fmt = response_format(body.get("response_format"))
    if fmt is not None:
        payload["format"] = fmt
    return _with_options(payload, body, num_ctx=num_ctx, keep_alive=keep_alive)


def generate_request(
    model: str, body: dict[str, Any], *, num_ctx: int | None, keep_alive: str | None
) -> dict[str, Any]:
    """The `/api/generate` body for an OpenAI completions request of one prompt: `raw`, so that
    the prompt is continued as is, with no chat template around it."""
    payload: dict[str, Any] = {
        "model": model,
        "prompt": body.get("prompt") or "",
        "raw": True,
        "stream": True,
    }
    return _with_options(payload, body, num_ctx=num_ctx, keep_alive=keep_alive)


def _with_options(
    payload: dict[str, Any], body: dict[str, Any], *, num_ctx: int | None, keep_alive: str | None
) -> dict[str, Any]:
    """`payload` with the request's sampling options, context length and keep-alive."""
    if body.get("logit_bias"):
        raise InvalidRequest("ollama: logit_bias is not supported", param="logit_bias")
    options = {
        ours: body[theirs] for theirs, ours in _OPTIONS.items() if body.get(theirs) is not None
    }
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    if num_ctx is not None:
        options["num_ctx"] = num_ctx
    if options:
        payload["options"] = options
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive
    return payload


def response_format(value: Any) -> str | dict[str, Any] | None:
    """Ollama's `format` for an OpenAI `response_format`: "json", or the JSON schema."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    raise InvalidRequest(
        f"ollama: response_format type {kind!r} is not supported "
        "(text, json_object or json_schema)",
        param="response_format",
    )


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tool_names: dict[str, str] = {}
    converted: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        out: dict[str, Any] = {"role": "system" if role == "developer" else role}
        text, images = _content(message.get("content"))
        out["content"] = text
        if images:
            out["images"] = images
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                name = function.get("name", "")
                if call.get("id"):
                    tool_names[call["id"]] = name
                calls.append(
                    {"function": {"name": name, "arguments": _arguments(function.get("arguments"))}}
                )
            out["tool_calls"] = calls
        if role == "tool":
            name = tool_names.get(message.get("tool_call_id") or "") or message.get("name")
            if name:
                out["tool_name"] = name
        converted.append(out)
    return converted


def _content(content: Any) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "refusal"):
            texts.append(part.get(kind) or "")
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            images.append(_image_base64(url))
        else:
            raise InvalidRequest(
                f"ollama: content parts of type {kind!r} are not supported", param="messages"
            )
    return "\n".join(texts), images


def _image_base64(url: str) -> str:
    if not url.startswith("data:"):
        raise InvalidRequest(
            "ollama: images must be sent inline as data: URLs (data:image/png;base64,...); "
            "Ollama cannot fetch images from http(s) URLs",
            param="messages",
        )
    header, sep, data = url.partition(",")
    if not sep:
        raise InvalidRequest("ollama: malformed image data URL", param="messages")
    if header.endswith(";base64"):
        return data
    return base64.b64encode(unquote_to_bytes(data)).decode("ascii")


def _arguments(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments if arguments is not None else {}
    if not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "ollama: tool call arguments must be a JSON object", param="messages"
        ) from None


def new_call_id() -> str:
    return new_id("call_")


class ChunkConverter:
    """Turns the NDJSON lines of one `/api/chat` or `/api/generate` stream into OpenAI
    chunks."""

    def __init__(self) -> None:
        self.started = False
        self.done = False
        self.tool_calls = 0

    def feed(self, line: dict[str, Any]) -> list[Chunk]:
        message = line.get("message") or {
            "content": line.get("response"),  # /api/generate's
            "thinking": line.get("thinking"),
        }
        chunks: list[Chunk] = []
        delta: dict[str, Any] = {}
        if not self.started:
            self.started = True
            delta["role"] = "assistant"
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        if message.get("content") or "role" in delta:
            delta["content"] = message.get("content") or ""
        if delta:
            chunks.append(_choice(delta, None))
        for call in message.get("tool_calls") or []:
            chunks.append(_choice({"tool_calls": [self._tool_call(call)]}, None))
        if line.get("done"):
            self.done = True
            chunks.append(_choice({}, self._finish_reason(line.get("done_reason"))))
            chunks.append(_usage(line))
        return chunks

    def _tool_call(self, call: dict[str, Any]) -> dict[str, Any]:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
        index = self.tool_calls
        self.tool_calls += 1
        return {
            "index": index,
            "id": call.get("id") or new_call_id(),
            "type": "function",
            "function": {"name": function.get("name", ""), "arguments": arguments},
        }

    def _finish_reason(self, done_reason: Any) -> str:
        if self.tool_calls:
            return "tool_calls"
        return "length" if done_reason == "length" else "stop"


def _choice(delta: dict[str, Any], finish_reason: str | None) -> Chunk:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def _usage(line: dict[str, Any]) -> Chunk:
    prompt = int(line.get("prompt_eval_count") or 0)
    completion = int(line.get("eval_count") or 0)
    return {
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
