"""What a newcomer gets from the embedded model: 20 fixed simple prompts through a real gateway.

Starts `python -m app serve` from `--app-dir` (default: this checkout) on a free port, with the
embedded model only (no Ollama, no OpenAI), the repository's persona, the default tools and an
embedded Redis in a scratch directory. Each prompt is sent as a newcomer sends it: a plain
non-stream request with no max_tokens and no temperature (only a fixed `seed`, so that a rerun
samples the same tokens; `--seeds 0-9` repeats the set with ten seeds, `--temperature` sends
one). Per prompt it records the reply's length, the seconds it took, the
finish_reason (`stop`: the model stopped by itself; `length`: cut at max_tokens), whether the
persona's instructions came back in the reply, whether the reply holds the expected word (a
crude on-topic check), and the reply itself.

Run: python benchmarks/base_model_prompts.py [--app-dir DIR] [--seeds 7] [--temperature T]
                                            [--output FILE]
     python benchmarks/base_model_prompts.py --table FILE   # the table of a saved run again

The "before" figures in docs/PERFORMANCE.md come from the framing of commit 6f6640f:

    git worktree add /tmp/before 6f6640f
    python benchmarks/base_model_prompts.py --app-dir /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
MODEL = "local/gemma-3-270m"

# Phrases of persona.json that a reply has no business repeating.
PERSONA_PHRASES = (
    "helpful, accurate assistant",
    "answer the user's question directly",
    "instead of guessing",
    "be concise",
    "lead with the answer",
    "use markdown",
    "language the user wrote in",
    "style:",
)


@dataclass(frozen=True, slots=True)
class Prompt:
    label: str
    messages: list[dict[str, str]]
    expect: tuple[str, ...] = ()
    """Words of which a reply on topic holds at least one (case-insensitive); empty: unchecked."""


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


PROMPTS = [
    Prompt("Hello!", user("Hello!"), ("hello", "hi", "hey", "help")),
    Prompt("Hi, how are you?", user("Hi, how are you?"), ("good", "well", "fine", "great")),
    Prompt("Good morning!", user("Good morning!"), ("morning", "hello", "hi", "help")),
    Prompt("Thank you!", user("Thank you!"), ("welcome", "pleasure", "glad", "problem")),
    Prompt("Capital of France", user("What is the capital of France?"), ("paris",)),
    Prompt("Capital of Japan", user("What is the capital of Japan?"), ("tokyo",)),
    Prompt("Capital of Germany", user("What is the capital of Germany?"), ("berlin",)),
    Prompt("2+2", user("What is 2+2?"), ("4", "four")),
    Prompt("17*23", user("What is 17*23?"), ("391",)),
    Prompt("15% of 200", user("What is 15% of 200?"), ("30",)),
    Prompt("Days in a week", user("How many days are in a week?"), ("7", "seven")),
    Prompt("What is a cat?", user("What is a cat?"), ("animal", "mammal", "pet")),
    Prompt("Photosynthesis", user("What is photosynthesis?"), ("light", "sun", "plant")),
    Prompt("Define gravity", user("Define gravity in one sentence."), ("force", "attract")),
    Prompt("CPU", user("What does CPU stand for?"), ("central processing unit",)),
    Prompt("Romeo and Juliet", user("Who wrote Romeo and Juliet?"), ("shakespeare",)),
    Prompt("Sky colour", user("What color is the sky?"), ("blue",)),
    Prompt("Spanish", user('How do you say "thank you" in Spanish?'), ("gracias",)),
    Prompt("Joke", user("Tell me a joke."), ()),
    Prompt(
        "Multi-turn name",
        [
            {"role": "user", "content": "Hi, my name is Sam."},
            {"role": "assistant", "content": "Nice to meet you, Sam! How can I help?"},
            {"role": "user", "content": "What is my name?"},
        ],
        ("sam",),
    ),
]


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    tools: list[str]
    completion_tokens: int
    chars: int
    seconds: float
    finish_reason: str
    persona_echoed: bool
    on_topic: bool | None
    reply: str
    seed: int | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(app_dir: Path, port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OLLAMA_BASE_URL": "",
        "OPENAI_BASE_URL": "",
        "OPENAI_API_KEY": "",
        "LLAMACPP_BASE_URL": "",
        "LOCAL_ENABLED": "true",
        "API_KEYS": "",
        "LOG_LEVEL": "WARNING",
        "DATA_DIR": str(data),
        "PERSONA_PATH": str(app_dir / "persona.json"),
        "PYTHONPATH": str(app_dir),
    }
    env.pop("API_KEYS_FILE", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            cwd=data,  # no .env of the checkout's, and nothing written into it
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with code {proc.returncode}")
        try:
            if client.get("/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the gateway was not ready within {timeout:.0f}s")


def ask(client: httpx.Client, prompt: Prompt, seed: int, temperature: float | None) -> Result:
    body: dict[str, Any] = {"model": MODEL, "messages": prompt.messages, "seed": seed}
    if temperature is not None:
        body["temperature"] = temperature
    started = time.perf_counter()
    resp = client.post("/v1/chat/completions", json=body)
    seconds = time.perf_counter() - started
    resp.raise_for_status()
    answer: dict[str, Any] = resp.json()
    choice = answer["choices"][0]
    reply: str = choice["message"].get("content") or ""
    lowered = reply.lower()
    return Result(
        label=prompt.label,
        tools=[used["name"] for used in answer.get("tools_used") or []],
        completion_tokens=int(answer["usage"]["completion_tokens"]),
        chars=len(reply),
        seconds=round(seconds, 2),
        finish_reason=str(choice["finish_reason"]),
        persona_echoed=any(phrase in lowered for phrase in PERSONA_PHRASES),
        on_topic=on_topic(prompt, reply),
        reply=reply,
        seed=seed,
    )


def on_topic(prompt: Prompt, reply: str) -> bool | None:
    """Whether `reply` holds one of the prompt's expected words; None when none are given."""
    if not prompt.expect:
        return None
    return any(re.search(rf"\b{re.escape(word)}\b", reply, re.I) for word in prompt.expect)


def cell(text: str, limit: int = 90) -> str:
    flat = " ".join(text.split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|") or "(empty)"


def summary(results: list[Result]) -> str:
    checked = [r for r in results if r.on_topic is not None]
    return (
        f"Median: {statistics.median(r.seconds for r in results):.2f} s, "
        f"{statistics.median(r.completion_tokens for r in results):g} tokens, "
        f"{statistics.median(r.chars for r in results):g} chars. "
        f"Stopped by itself (`stop`): {sum(r.finish_reason == 'stop' for r in results)}/"
        f"{len(results)}. Persona echoed: {sum(r.persona_echoed for r in results)}/"
        f"{len(results)}. Expected word present: {sum(bool(r.on_topic) for r in checked)}/"
        f"{len(checked)}. Total: {sum(r.seconds for r in results):.1f} s."
    )


def table(everything: list[Result]) -> str:
    """The first seed's answers one by one, and the summary of each seed and of all."""
    seeds = list(dict.fromkeys(r.seed for r in everything))
    results = [r for r in everything if r.seed == seeds[0]]
    mark = {True: "yes", False: "no", None: "-"}
    lines = [
        "| # | prompt | tool | tokens | chars | s | finish | persona echoed | expected word "
        "| reply |",
        "|---:|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for i, r in enumerate(results, 1):
        lines.append(
            f"| {i} | {r.label} | {', '.join(r.tools) or '-'} | {r.completion_tokens} | {r.chars} "
            f"| {r.seconds:.2f} | {r.finish_reason} | {mark[r.persona_echoed]} "
            f"| {mark[r.on_topic]} | {cell(r.reply)} |"
        )
    lines += ["", f"Seed {seeds[0]}. {summary(results)}"]
    if len(seeds) > 1:
        for seed in seeds[1:]:
            lines.append(f"Seed {seed}. {summary([r for r in everything if r.seed == seed])}")
        lines.append(f"All {len(seeds)} seeds. {summary(everything)}")
    return "\n".join(lines)


def seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(part) for part in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="checkout whose app/ runs")
    parser.add_argument("--seeds", default="7", help="seeds to run the set with: 7, 1,2,3 or 0-9")
    parser.add_argument("--temperature", type=float, help="sent with every request (default: none)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/base_model.json")
    parser.add_argument("--table", type=Path, help="only print the table of a saved --output")
    args = parser.parse_args()
    if args.table:
        prompts = {prompt.label: prompt for prompt in PROMPTS}
        saved = [Result(**r) for r in json.loads(args.table.read_text())]
        print(table([replace(r, on_topic=on_topic(prompts[r.label], r.reply)) for r in saved]))
        return 0
    app_dir: Path = args.app_dir.resolve()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="base-model-bench-") as scratch:
        data = Path(scratch)
        log = data / "gateway.log"
        proc = start_gateway(app_dir, port, data, log)
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=300) as client:
                wait_ready(client, proc, timeout=120)
                models = [m["id"] for m in client.get("/v1/models").json()["data"]]
                if MODEL not in models:
                    raise RuntimeError(f"{MODEL} is not served; /v1/models lists {models}")
                warm = {"model": MODEL, "messages": user("Hi"), "max_tokens": 1}
                client.post("/v1/chat/completions", json=warm).raise_for_status()  # loads it
                results = []
                for seed in seeds(args.seeds):
                    for prompt in PROMPTS:
                        results.append(ask(client, prompt, seed, args.temperature))
                        done = results[-1]
                        print(f"{seed} {prompt.label}: {done.seconds:.2f}s", file=sys.stderr)
        except BaseException:
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(f"\n(written to {args.output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
