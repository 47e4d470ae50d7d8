"""The embedded model's side of a request: the OpenAI body read into a `Request`, and the
generation that runs in the provider's worker thread (prompt, sampling, stop sequences)."""

from __future__ import annotations

import codecs
import random
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

_IMAGE_PARTS = ("image_url", "input_image", "image")


@dataclass(frozen=True, slots=True)
class Request:
    messages: list[dict[str, str]]
    max_tokens: int | None
    """As asked (at most `cap`), or None for the model's default."""
    cap: int
    """LOCAL_MAX_TOKENS: the default for a chat model, and the most any request gets."""
    stop: list[str]
    seed: int | None
    temperature: float | None
    top_p: float | None


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
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    stop = body.get("stop") or []
    stops = [s for s in ([stop] if isinstance(stop, str) else stop) if s]
    temperature, top_p = body.get("temperature"), body.get("top_p")
    return Request(
        messages,
        None if max_tokens is None else min(max_tokens, max_tokens_cap),
        max_tokens_cap,
        stops,
        body.get("seed"),
        None if temperature is None else float(temperature),
        None if top_p is None else float(top_p),
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
    """The request's prompt tokens and stop sequences, through the chat formatter or, for a base
    model, the few-shot dialogue."""
    if formatter is None:
        text = render(request.messages, persona)
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
            stopping_criteria=prompt.stopping_criteria,
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
