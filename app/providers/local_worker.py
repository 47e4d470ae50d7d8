"""The embedded model's side of a request: the OpenAI body read into a `Request`, and the
generation that runs in the provider's worker thread (prompt, sampling, stop sequences, and the
grammar a JSON answer must match)."""

from __future__ import annotations

import codecs
import random
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from app.errors import InvalidRequest, UpstreamError
from app.providers.base_prompt import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    STOPS,
    PersonaText,
    render,
)

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import ChatFormatter
    from llama_cpp.llama_grammar import LlamaGrammar

_IMAGE_PARTS = ("image_url", "input_image", "image")


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """`response_format`: the answer is one JSON object, matching `schema` when there is one."""

    schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Request:
    messages: list[dict[str, str]]
    prompt: str | None
    """A raw completion's text, continued as is (then `messages` is empty)."""
    max_tokens: int | None
    """As asked (at most `cap`), or None for the model's default."""
    cap: int
    """LOCAL_MAX_TOKENS: the default for a chat model, and the most any request gets."""
    stop: list[str]
    seed: int | None
    temperature: float | None
    top_p: float | None
    presence_penalty: float
    frequency_penalty: float
    json: JsonAnswer | None


@dataclass(frozen=True, slots=True)
class _Prompt:
    tokens: list[int]
    stops: list[str]
    stopping_criteria: Any
    base: bool
    """A base model's dialogue: short by default, whitespace around the answer trimmed."""


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def parse(
    model: str, chat_format: str | None, body: dict[str, Any], max_tokens_cap: int
) -> Request:
    """The request for `model` (prompted with `chat_format`), or `InvalidRequest` naming what it
    cannot do."""
    if body.get("tools"):
        raise InvalidRequest(
            f"the local model '{model}' has no function calling; drop `tools`", param="tools"
        )
    system: list[str] = []
    messages: list[dict[str, str]] = []
    for message in body.get("messages") or []:
        role = "system" if message.get("role") == "developer" else message.get("role")
        text = _text(model, message.get("content"))
        if role == "system" and chat_format == "gemma":
            system.append(text)  # llama.cpp's gemma format drops system turns
        else:
            messages.append({"role": str(role), "content": text})
    if system:
        first_user = next((m for m in messages if m["role"] == "user"), None)
        if first_user is None:
            messages.insert(0, first_user := {"role": "user", "content": ""})
        first_user["content"] = "\n\n".join([*system, first_user["content"]]).strip()
    return _request(model, body, max_tokens_cap, messages=messages)


def parse_completion(model: str, body: dict[str, Any], max_tokens_cap: int) -> Request:
    """The raw completion of `body["prompt"]` (one string) for `model`, or `InvalidRequest`."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest(
            f"the local model '{model}' completes one text prompt at a time", param="prompt"
        )
    return _request(model, body, max_tokens_cap, prompt=prompt)


def _request(
    model: str,
    body: dict[str, Any],
    max_tokens_cap: int,
    *,
    messages: list[dict[str, str]] | None = None,
    prompt: str | None = None,
) -> Request:
    """The sampling that `body` asks for, around `messages` or a raw `prompt`."""
    if body.get("logit_bias"):
        raise InvalidRequest(
            f"the local model '{model}' does not support logit_bias", param="logit_bias"
        )
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    stop = body.get("stop") or []
    stops = [s for s in ([stop] if isinstance(stop, str) else stop) if s]
    temperature, top_p = body.get("temperature"), body.get("top_p")
    return Request(
        messages or [],
        prompt,
        None if max_tokens is None else min(max_tokens, max_tokens_cap),
        max_tokens_cap,
        stops,
        body.get("seed"),
        None if temperature is None else float(temperature),
        None if top_p is None else float(top_p),
        float(body.get("presence_penalty") or 0.0),
        float(body.get("frequency_penalty") or 0.0),
        _json_answer(model, body.get("response_format")),
    )


def _json_answer(model: str, value: Any) -> JsonAnswer | None:
    """What `response_format` asks of the answer (its schema is made a grammar when the model
    runs), or `InvalidRequest` for what llama.cpp's grammars cannot honour."""
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or kind == "text":
        return None
    if kind == "json_object":
        return JsonAnswer()
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest(
                f"the local model '{model}' needs response_format.json_schema.schema, "
                "a JSON schema object",
                param="response_format",
            )
        return JsonAnswer(schema)
    raise InvalidRequest(
        f"the local model '{model}' does not support response_format type {kind!r} "
        "(text, json_object or json_schema)",
        param="response_format",
    )


def _text(model: str, content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind in _IMAGE_PARTS:
            raise InvalidRequest(f"the local model '{model}' has no vision", param="messages")
        else:
            raise InvalidRequest(f"the local model '{model}' reads text parts only, not {kind!r}")
    return "\n".join(texts)


def _prompt(
    llm: Llama, formatter: ChatFormatter | None, request: Request, persona: PersonaText
) -> _Prompt:
    """The request's prompt tokens and stop sequences: a raw completion's text as is, else
    through the chat formatter or, for a base model, the few-shot dialogue."""
    if request.prompt is not None:
        tokens = llm.tokenize(request.prompt.encode(), add_bos=True, special=True)
        return _Prompt(tokens, request.stop, None, base=False)
    if formatter is None:
        json = request.json
        text = render(
            request.messages,
            persona,
            json=json is not None,
            schema=json.schema if json is not None else None,
        )
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        return _Prompt(tokens, [*request.stop, *STOPS], None, base=True)
    try:
        formatted = formatter(messages=request.messages)  # type: ignore[arg-type]
    except ValueError as exc:  # raised by a chat template that refuses the conversation
        message = f"the local model's chat template refused the messages: {exc}"
        raise InvalidRequest(message, param="messages") from exc
    tokens = llm.tokenize(
        formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
    )
    extra = formatted.stop
    stops = request.stop + ([extra] if isinstance(extra, str) else extra or [])
    return _Prompt(tokens, stops, formatted.stopping_criteria, base=False)


def _grammar(llm: Llama, json: JsonAnswer) -> LlamaGrammar:
    """The llama.cpp grammar of `json`: any JSON object, or one that matches its schema."""
    import llama_cpp
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

    gbnf = JSON_GBNF
    if json.schema is not None:
        try:
            gbnf = json_schema_to_gbnf(orjson.dumps(json.schema).decode())
        except Exception as exc:  # the converter asserts, or fails on what it does not expect
            raise InvalidRequest(
                f"the local model cannot follow this JSON schema: {exc}", param="response_format"
            ) from None
    # For a grammar it cannot parse llama.cpp gives no sampler, which llama-cpp-python would
    # add to its chain all the same.
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not sampler:
        raise InvalidRequest(
            "the local model cannot follow this JSON schema: llama.cpp refused its grammar",
            param="response_format",
        )
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(gbnf)


def generate(
    llm: Llama,
    formatter: ChatFormatter | None,
    request: Request,
    persona: PersonaText,
    emit: Callable[[str | Done | BaseException], None],
    stopped: threading.Event,
) -> None:
    """Runs in a worker thread: formats and tokenizes the prompt, then samples token by token,
    checking `stopped` before each, and emits text deltas, then a `Done` or the exception."""
    import llama_cpp

    try:
        prompt = _prompt(llm, formatter, request, persona)
        n_ctx, size = llm.n_ctx(), len(prompt.tokens)
        if size >= n_ctx:
            raise InvalidRequest(
                f"the prompt is {size} tokens, more than the local model's context "
                f"length of {n_ctx} tokens (LOCAL_N_CTX) allows",
                param="messages",
            )
        default = min(DEFAULT_MAX_TOKENS, request.cap) if prompt.base else request.cap
        max_tokens = min(request.max_tokens or default, n_ctx - size)
        temperature = request.temperature
        if temperature is None:
            temperature = DEFAULT_TEMPERATURE if prompt.base else 1.0
        llm.set_seed(request.seed if request.seed is not None else random.getrandbits(32))
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stops, trim = prompt.stops, prompt.base
        # text[:sent] is handled (emitted, or leading whitespace skipped); stops are looked for
        # from `shown`, the end of what was sent, so one that starts in skipped space is found.
        text, sent, shown, count, finish, cut = "", 0, 0, 0, "length", False
        tokens = llm.generate(
            prompt.tokens,
            temp=temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            repeat_penalty=1.0,
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            stopping_criteria=prompt.stopping_criteria,
            grammar=None if request.json is None else _grammar(llm, request.json),
        )
        with closing(tokens):
            for token in tokens:
                if stopped.is_set():
                    emit(UpstreamError("local", "the generation was stopped"))
                    return
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                count += 1
                text += decoder.decode(llm.detokenize([token]))
                at = min((i for s in stops if (i := text.find(s, shown)) >= 0), default=-1)
                if at >= 0:
                    text, finish, cut = text[:at], "stop", True
                    break
                if trim and shown == 0:
                    sent = len(text) - len(text.lstrip())
                # Hold back a tail that may be the start of a stop sequence (or, trimming,
                # whitespace that may end the answer).
                held = max(
                    (k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0
                )
                if trim:
                    held = max(held, len(text) - len(text.rstrip()))
                if len(text) - held > sent:
                    emit(text[sent : len(text) - held])
                    sent = shown = len(text) - held
                if count >= max_tokens:
                    break
            else:
                finish = "stop"  # the chat format's stopping criteria ended generation
        if not cut:
            text += decoder.decode(b"", final=True)
        if trim:
            text = text.rstrip()
        if len(text) > sent:
            emit(text[sent:])
        emit(Done(finish, size, count))
    except BaseException as exc:
        emit(exc)
