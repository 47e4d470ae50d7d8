"""A fake Ollama server speaking the native API (`/api/chat`, `/api/generate`, `/api/embed`,
`/api/pull`, ...).

Run it with `tests.fakes.serve.serve(FakeOllama().app)`. The scenario is chosen by model name:

    tool-model    a tool call (arguments as an object, no id) when tools are offered and the
                  last message is not a tool result, else "Tool said: <result>"
    no-tools      400 "... does not support tools" when tools are offered, as Ollama answers
                  for models without function calling; else "You said: <last message>"
    think-model   two `thinking` lines, then the answer
    error-line    status 200, one content line, then an `{"error": ...}` line
    error-first   status 200, an `{"error": ...}` line first
    no-counts     the final line carries no prompt_eval_count / eval_count
    truncated     content lines, then the stream ends without a `done: true` line
    slow-stream   many lines, slowly; `client_went_away` tells whether the client left early
    rate-limited  429 with Retry-After
    long-context  "the input length exceeds the context length": 400 from /api/chat, 500 from
                  /api/embed (as older versions answer)
    nomic-embed-text, embedder
                  embedding models (`/api/show` capabilities ["embedding"], BERT families in
                  `/api/tags`); `/api/chat` answers 400 '"<model>" does not support chat'
    anything else "Hello, world!" in four lines (`options.num_predict` cuts it: done_reason
                  "length")

`/api/generate` (raw prompts) answers with the same scenarios, the text in `response`; the prompt
stands for the last message ("You said: <prompt>" for `no-tools`).

A model that is not installed answers 404 "model ... not found, try pulling it first"; models in
`pullable` can be pulled (which installs them), others fail to pull as on the real registry.
`/api/show` gives a model's capabilities, unless `capabilities=False` (as before Ollama 0.6.4),
after `show_delay` seconds; `show_requests` counts the models it was asked about.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

VERSION = "0.5.7"
CREATED_AT = "2025-01-01T00:00:00.000000Z"
ERROR_MESSAGE = "an error was encountered while running the model: unexpected EOF"
SLOW_LINES = 200
SLOW_INTERVAL = 0.02
EMBEDDING_MODELS = {"nomic-embed-text": "nomic-bert", "embedder": "bert"}
"""The embedding models, with their family."""
CONTEXT_OVERFLOW = "the input length exceeds the context length"

Line = dict[str, Any]


def full_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def base_name(name: str) -> str:
    return full_name(name).rsplit(":", 1)[0]


class FakeOllama:
    def __init__(
        self,
        *,
        installed: tuple[str, ...] = (
            "llama3.2",
            "tool-model",
            "no-tools",
            "think-model",
            "error-line",
            "error-first",
            "no-counts",
            "truncated",
            "slow-stream",
            "rate-limited",
            "long-context",
            "nomic-embed-text",
            "embedder",
        ),
        pullable: tuple[str, ...] = ("qwen2.5:0.5b", "gemma3"),
        pull_delay: float = 0.05,
        capabilities: bool = True,
        show_delay: float = 0.0,
    ) -> None:
        self.installed = {full_name(name) for name in installed}
        self.capabilities = capabilities
        self.show_delay = show_delay
        self.show_requests: Counter[str] = Counter()
        self.pullable = {full_name(name) for name in pullable}
        self.pull_delay = pull_delay
        self.chat_requests: list[dict[str, Any]] = []
        self.generate_requests: list[dict[str, Any]] = []
        self.embed_requests: list[dict[str, Any]] = []
        self.pull_requests: list[dict[str, Any]] = []
        self.pulls: Counter[str] = Counter()
        self.slow_lines_sent = 0
        self.client_went_away = False
        self.app = Starlette(
            routes=[
                Route("/", self.root, methods=["GET", "HEAD"]),
                Route("/api/version", self.version),
                Route("/api/tags", self.tags),
                Route("/api/show", self.show, methods=["POST"]),
                Route("/api/chat", self.chat, methods=["POST"]),
                Route("/api/generate", self.generate, methods=["POST"]),
                Route("/api/embed", self.embed, methods=["POST"]),
                Route("/api/pull", self.pull, methods=["POST"]),
            ]
        )

    async def root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": VERSION})

    async def tags(self, request: Request) -> Response:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": CREATED_AT,
                "size": 1_000_000,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": _details(name),
            }
            for name in sorted(self.installed)
        ]
        return JSONResponse({"models": models})

    async def show(self, request: Request) -> Response:
        model = full_name(str(orjson.loads(await request.body()).get("model", "")))
        self.show_requests[model] += 1
        await asyncio.sleep(self.show_delay)
        if model not in self.installed:
            return JSONResponse({"error": f"model '{model}' not found"}, 404)
        shown: dict[str, Any] = {"details": _details(model), "model_info": {}}
        if self.capabilities:
            embeds = base_name(model) in EMBEDDING_MODELS
            shown["capabilities"] = ["embedding"] if embeds else ["completion", "tools"]
        return JSONResponse(shown)

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.chat_requests.append(body)
        model = str(body.get("model", ""))
        if base_name(model) == "rate-limited":
            return JSONResponse({"error": "too many requests"}, 429, {"Retry-After": "7"})
        if full_name(model) not in self.installed:
            return _not_found(model)
        if base_name(model) == "long-context":
            return JSONResponse({"error": CONTEXT_OVERFLOW}, 400)
        if base_name(model) in EMBEDDING_MODELS:
            return JSONResponse({"error": f'"{model}" does not support chat'}, 400)
        if base_name(model) == "no-tools" and body.get("tools"):
            error = f"registry.ollama.ai/library/{full_name(model)} does not support tools"
            return JSONResponse({"error": error}, 400)
        lines = self._script(base_name(model), body)
        if body.get("stream", True) is False:
            return _single(lines)
        if base_name(model) == "slow-stream":
            return _ndjson(self._slow(model))
        return _ndjson(_lines(lines))

    async def generate(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.generate_requests.append(body)
        model = str(body.get("model", ""))
        if full_name(model) not in self.installed:
            return _not_found(model)
        chat = {**body, "messages": [{"role": "user", "content": body.get("prompt", "")}]}
        lines = [_generated(line) for line in self._script(base_name(model), chat)]
        return _ndjson(_lines(lines))

    async def embed(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.embed_requests.append(body)
        model = str(body.get("model", ""))
        if full_name(model) not in self.installed:
            return _not_found(model)
        if base_name(model) == "long-context":
            return JSONResponse({"error": CONTEXT_OVERFLOW}, 500)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = int(body.get("dimensions") or 4)
        vectors = [[float((len(text) + i) % 7) / 7 for i in range(dims)] for text in texts]
        return JSONResponse(
            {
                "model": model,
                "embeddings": vectors,
                "total_duration": 1000,
                "load_duration": 100,
                "prompt_eval_count": sum(len(text.split()) for text in texts),
            }
        )

    async def pull(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.pull_requests.append(body)
        model = full_name(str(body.get("model") or body.get("name") or ""))
        self.pulls[model] += 1
        if body.get("stream", True) is False:
            if model not in self.pullable:
                return JSONResponse({"error": "pull model manifest: file does not exist"}, 500)
            self.installed.add(model)
            return JSONResponse({"status": "success"})
        return _ndjson(self._pull_lines(model))

    async def _pull_lines(self, model: str) -> AsyncIterator[Line]:
        yield {"status": "pulling manifest"}
        if model not in self.pullable:
            yield {"error": "pull model manifest: file does not exist"}
            return
        digest = "sha256:" + hashlib.sha256(model.encode()).hexdigest()
        total = 4_000_000
        steps = 50
        for step in range(steps + 1):
            await asyncio.sleep(self.pull_delay / steps)
            completed = total * step // steps
            line = {"status": f"downloading {digest}", "digest": digest, "total": total}
            yield line | ({"completed": completed} if step else {})
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        self.installed.add(model)
        yield {"status": "success"}

    def _script(self, scenario: str, body: dict[str, Any]) -> list[Line]:
        messages = body.get("messages") or []
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        done = _done(prompt_tokens, 0, "stop")
        if scenario == "tool-model":
            tools = body.get("tools") or []
            last = messages[-1] if messages else {}
            if tools and last.get("role") != "tool":
                call = {
                    "function": {
                        "name": tools[0]["function"]["name"],
                        "arguments": {"city": "Paris", "unit": "celsius"},
                    }
                }
                return [_message("", tool_calls=[call]), done | {"eval_count": 9}]
            pieces = ["Tool said: ", str(last.get("content", ""))]
        elif scenario == "no-tools":
            pieces = ["You said: ", str(messages[-1].get("content", ""))]
        elif scenario == "think-model":
            thinking = [_message("", thinking="Let me think."), _message("", thinking=" Done.")]
            return [*thinking, _message("42"), done | {"eval_count": 3}]
        elif scenario == "error-line":
            return [_message("Hello"), {"error": ERROR_MESSAGE}]
        elif scenario == "error-first":
            return [{"error": ERROR_MESSAGE}]
        elif scenario == "no-counts":
            return [_message("Hi"), {k: v for k, v in done.items() if not k.endswith("count")}]
        elif scenario == "truncated":
            return [_message("Hello"), _message(", wor")]
        else:
            pieces = ["Hello", ", ", "world", "!"]
        limit = (body.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and 0 <= limit < len(pieces):
            pieces, done = pieces[:limit], done | {"done_reason": "length"}
        return [*(_message(piece) for piece in pieces), done | {"eval_count": len(pieces)}]

    async def _slow(self, model: str) -> AsyncIterator[Line]:
        completed = False
        try:
            for _ in range(SLOW_LINES):
                yield _message("tick ")
                self.slow_lines_sent += 1
                await asyncio.sleep(SLOW_INTERVAL)
            completed = True
            yield _done(1, SLOW_LINES, "stop")
        finally:
            if not completed:
                self.client_went_away = True


def _details(name: str) -> dict[str, Any]:
    family = EMBEDDING_MODELS.get(base_name(name), "llama")
    return {"format": "gguf", "family": family, "families": [family], "parameter_size": "1B"}


def _message(content: str, **extra: Any) -> Line:
    return {
        "model": "fake",
        "created_at": CREATED_AT,
        "message": {"role": "assistant", "content": content, **extra},
        "done": False,
    }


def _done(prompt_tokens: int, eval_tokens: int, reason: str) -> Line:
    return {
        "model": "fake",
        "created_at": CREATED_AT,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": reason,
        "total_duration": 5_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 1_000_000,
        "eval_count": eval_tokens,
        "eval_duration": 3_000_000,
    }


def _generated(line: Line) -> Line:
    """An `/api/chat` line as `/api/generate` words it: the text in `response`."""
    if "message" not in line:
        return line
    message = {k: v for k, v in line.items() if k != "message"}
    return message | {"response": line["message"].get("content", "")}


def _not_found(model: str) -> Response:
    return JSONResponse({"error": f'model "{model}" not found, try pulling it first'}, 404)


async def _lines(lines: list[Line]) -> AsyncIterator[Line]:
    for line in lines:
        yield line


def _ndjson(lines: AsyncIterator[Line]) -> Response:
    async def body() -> AsyncIterator[bytes]:
        async for line in lines:
            yield orjson.dumps(line) + b"\n"

    return StreamingResponse(body(), media_type="application/x-ndjson")


def _single(lines: list[Line]) -> Response:
    """The `stream: false` answer: the final line, carrying the whole message."""
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    for line in lines:
        if "error" in line:
            return JSONResponse({"error": line["error"]}, 500)
        part = line.get("message") or {}
        message["content"] += part.get("content", "")
        if part.get("thinking"):
            message["thinking"] = message.get("thinking", "") + part["thinking"]
        if part.get("tool_calls"):
            message.setdefault("tool_calls", []).extend(part["tool_calls"])
    final = dict(lines[-1]) if lines and lines[-1].get("done") else _done(0, 0, "stop")
    return JSONResponse(final | {"message": message})
