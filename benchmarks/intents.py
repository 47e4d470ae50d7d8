"""The intent classifier on the labelled set (`intents.jsonl`: paraphrased utterances, none
of them an example of the intents file, with out-of-scope ones labelled with the fallback
intent), in process, with no cache:

- `patterns`: patterns, then the fallback;
- `embedding`: patterns, then the real embedder (all-MiniLM-L6-v2 from its offline package);
- `model`, `embedding+model`: the same with the classifier model asked about what stays
  ambiguous: the embedded Gemma 3 270M (a base model) through the gateway's local provider and
  router, as the router pipeline asks it (`--model` names another of the gateway's models).

Each utterance is classified on its own (no current intent): accuracy overall and per intent,
the out-of-scope precision and recall, each stage's share, accuracy and latency (median, p95),
per split. Then, with a current intent: how many of FOLLOW_UPS keep it, and how many in-scope
utterances leave another for their own.

The set is `fresh-10` (167) and `fresh-11` (165): written by writers who saw only the intents'
descriptions and labelling rules, never the examples, each utterance measured once with the
shipped file frozen. Eleven earlier splits (1543 utterances, written and measured at earlier
points of the classifier's tuning, then learnt from) became the intents file's examples;
docs/PERFORMANCE.md has their history and figures. Utterances equal to an example or to each
other (case and punctuation aside) were dropped.

    python benchmarks/intents.py [--configs patterns,embedding,model,embedding+model]
        [--split all] [--errors] [--intents FILE] [--model local/gemma-3-270m]

Writes results/intents.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import load_settings
from app.knowledge.embedder import Embedder, LocalEmbedder
from app.pipelines.classifier import Ask, Classifier
from app.pipelines.intents import IntentSet, load_intents
from app.providers.factory import build_providers
from app.providers.router import Router

HERE = Path(__file__).resolve().parent
DATA = HERE / "intents.jsonl"
RESULTS = HERE / "results"
STAGES = ("pattern", "embedding", "model", "kept", "fallback")
SPLITS = ("fresh-10", "fresh-11", "all")
MODEL_MAX_TOKENS = 8
FOLLOW_UPS = (
    "and the second one?", "what about the other one", "ok and then?", "yes", "no", "why?",
    "can you explain that again", "what do you mean", "sure, go ahead", "and the first?",
    "how long will that take?", "ok", "yes please", "no thanks, the other option",
    "that didn't work", "still the same", "I tried that already", "what should I do next?",
    "is there another way?", "are you sure?", "ok, done. now what?", "it's the one from last week",
    "the blue one", "number 48213", "tomorrow would be better", "can you do it faster?",
    "and if that doesn't work?", "I'll try that", "what's the next step", "could you repeat that",
    "hmm, not really", "it says the same thing", "both of them", "the cheaper one",
    "does that apply to me too?", "how much would that be?", "when?", "where do I find that?",
    "the 2nd option sounds good", "right, and after that?",
)  # fmt: skip
"""Messages that continue a conversation without naming an intent: each should keep it."""


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    intent: str
    split: str


@dataclass(frozen=True, slots=True)
class Outcome:
    utterance: Utterance
    intent: str
    stage: str
    seconds: float

    @property
    def right(self) -> bool:
        return self.intent == self.utterance.intent


def load_set(path: Path = DATA) -> list[Utterance]:
    return [Utterance(**json.loads(line)) for line in path.read_text().splitlines() if line]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds < 1 else f"{seconds * 1000:.0f}"


def score(outcomes: list[Outcome], intents: IntentSet) -> dict[str, Any]:
    """Accuracy, per-intent recall and precision, out-of-scope precision and recall, stages."""
    fallback = intents.fallback
    total = len(outcomes)
    per_intent = {}
    for name in intents.names:
        labelled = [o for o in outcomes if o.utterance.intent == name]
        chosen = [o for o in outcomes if o.intent == name]
        per_intent[name] = {
            "n": len(labelled),
            "recall": sum(o.right for o in labelled) / len(labelled) if labelled else None,
            "precision": sum(o.right for o in chosen) / len(chosen) if chosen else None,
        }
    stages = {}
    for stage in STAGES:
        mine = [o for o in outcomes if o.stage == stage]
        seconds = [o.seconds for o in mine]
        stages[stage] = {
            "share": len(mine) / total,
            "n": len(mine),
            "accuracy": sum(o.right for o in mine) / len(mine) if mine else None,
            "median_ms": statistics.median(seconds) * 1000 if mine else None,
            "p95_ms": percentile(seconds, 0.95) * 1000 if mine else None,
        }
    seconds = [o.seconds for o in outcomes]
    return {
        "n": total,
        "accuracy": sum(o.right for o in outcomes) / total,
        "out_of_scope": per_intent[fallback],
        "per_intent": per_intent,
        "stages": stages,
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": percentile(seconds, 0.95) * 1000,
    }


async def run(
    name: str, classifier: Classifier, utterances: list[Utterance]
) -> tuple[list[Outcome], float]:
    """Every utterance classified in turn; and the seconds the first call took (it embeds the
    examples), which the figures leave out."""
    started = time.perf_counter()
    await classifier.classify("warm-up: the examples are embedded now")
    warm_up = time.perf_counter() - started
    outcomes = []
    for number, utterance in enumerate(utterances, 1):
        found = await classifier.classify(utterance.text)
        outcomes.append(Outcome(utterance, found.intent, found.stage, found.seconds))
        if number % 50 == 0:
            print(f"  {name}: {number}/{len(utterances)}", file=sys.stderr)
    return outcomes, warm_up


async def in_conversation(classifier: Classifier, utterances: list[Utterance]) -> dict[str, float]:
    """With a current intent: the share of FOLLOW_UPS that keep it (the conversation's intent
    taken in turn from the in-scope ones), and the share of in-scope utterances that leave
    another current intent for their own (the next in-scope intent in the file's order)."""
    intents = classifier.intents
    in_scope = [name for name in intents.names if name != intents.fallback]
    kept = 0
    for number, text in enumerate(FOLLOW_UPS):
        current = in_scope[number % len(in_scope)]
        kept += (await classifier.classify(text, current)).intent == current
    moving = [u for u in utterances if u.intent != intents.fallback]
    switched = 0
    for u in moving:
        current = in_scope[(in_scope.index(u.intent) + 1) % len(in_scope)]
        switched += (await classifier.classify(u.text, current)).intent == u.intent
    return {"kept": kept / len(FOLLOW_UPS), "switched": switched / len(moving)}


async def local_model(model: str) -> tuple[Ask, Router, aiohttp.ClientSession]:
    """An `ask` through the gateway's router to `model` (the embedded one by default)."""
    settings = load_settings(_env_file=None, ollama_base_url="", local_enabled=True)
    session = aiohttp.ClientSession()
    providers, _ = build_providers(settings.providers, session)
    router = Router(providers, settings.providers)
    route = await router.resolve(model)
    ask = partial(router.ask, route, max_tokens=MODEL_MAX_TOKENS, within=120.0)
    return ask, router, session


def fmt(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if percent else ms(value / 1000)


def report(name: str, scored: dict[str, dict[str, Any]], intents: IntentSet) -> str:
    """Markdown tables of one configuration."""
    lines = [f"### `{name}`", ""]
    lines += [
        "| split | n | accuracy | out-of-scope precision | out-of-scope recall "
        "| median ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for split, figures in scored.items():
        oos = figures["out_of_scope"]
        lines.append(
            f"| {split} | {figures['n']} | {fmt(figures['accuracy'])} | {fmt(oos['precision'])} "
            f"| {fmt(oos['recall'])} | {ms(figures['median_ms'] / 1000)} "
            f"| {ms(figures['p95_ms'] / 1000)} |"
        )
    every = scored["all"]
    lines += [
        "",
        "| stage | share | n | accuracy | median ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stage, figures in every["stages"].items():
        if figures["n"]:
            lines.append(
                f"| {stage} | {fmt(figures['share'])} | {figures['n']} "
                f"| {fmt(figures['accuracy'])} "
                f"| {fmt(figures['median_ms'], False)} | {fmt(figures['p95_ms'], False)} |"
            )
    lines += ["", "| intent | n | recall | precision |", "|---|---:|---:|---:|"]
    for intent in intents.names:
        figures = every["per_intent"][intent]
        label = f"{intent} (fallback)" if intent == intents.fallback else intent
        lines.append(
            f"| {label} | {figures['n']} | {fmt(figures['recall'])} | {fmt(figures['precision'])} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="patterns,embedding,model,embedding+model")
    parser.add_argument("--split", choices=SPLITS, default="all")
    parser.add_argument("--errors", action="store_true", help="list the misclassified utterances")
    parser.add_argument("--intents", type=Path, default=None, help="an intents file of your own")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--output", type=Path, default=RESULTS / "intents.json")
    args = parser.parse_args()
    intents = load_intents(args.intents)
    utterances = [u for u in load_set(args.data) if args.split in ("all", u.split)]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    embedder: Embedder | None = None
    if any("embedding" in config for config in configs):
        embedder = await LocalEmbedder.load("all-MiniLM-L6-v2", 32)
    ask: Ask | None = None
    session: aiohttp.ClientSession | None = None
    if any("model" in config for config in configs):
        ask, _, session = await local_model(args.model)
    results: dict[str, Any] = {"model": args.model, "configs": {}}
    try:
        for config in configs:
            classifier = Classifier(
                intents,
                embedder=embedder if "embedding" in config else None,
                ask=ask if "model" in config else None,
                model=args.model,
            )
            outcomes, warm_up = await run(config, classifier, utterances)
            scored = {
                split: score([o for o in outcomes if split in ("all", o.utterance.split)], intents)
                for split in SPLITS
                if split == "all" or split in {u.split for u in utterances}
            }
            conversation = await in_conversation(classifier, utterances)
            results["configs"][config] = {
                "warm_up_s": warm_up,
                "scores": scored,
                "conversation": conversation,
            }
            print(report(config, scored, intents))
            print(
                f"\nwith a current intent: {fmt(conversation['kept'])} of {len(FOLLOW_UPS)} "
                f"follow-ups keep it; {fmt(conversation['switched'])} of the in-scope utterances "
                "leave another for their own"
            )
            print(f"\nfirst call (examples embedded): {warm_up:.2f} s\n")
            if args.errors:
                for o in outcomes:
                    if not o.right:
                        expected, text = o.utterance.intent, o.utterance.text
                        print(f"  {expected:>9} -> {o.intent:<9} {o.stage:<9} {text}")
                print()
    finally:
        if session is not None:
            await session.close()
        if embedder is not None:
            embedder.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
