"""The memory script (benchmarks/memory_script.py) replayed through the pattern layer alone:
every current fact ends up stored and no superseded or forgotten one survives."""

from __future__ import annotations

from collections import Counter

from app.knowledge.facts import Add, Delete, Keep, Stored, Update, decide, extract
from benchmarks.memory_script import GONE, PROBES, SESSIONS


def replay() -> tuple[list[Stored], Counter[str], set[str]]:
    """The store after the script (a plain list here), the decisions by kind and every fact
    text that was ever stored."""
    store: list[Stored] = []
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    for session in SESSIONS:
        for message in session:
            for decision in decide(extract(message), store):
                counts[type(decision).__name__] += 1
                match decision:
                    case Add(fact):
                        store.append(Stored(f"m{len(seen)}", fact))
                        seen.add(fact.text)
                    case Update(id, fact):
                        store = [Stored(id, fact) if s.id == id else s for s in store]
                        seen.add(fact.text)
                    case Delete(id):
                        store = [s for s in store if s.id != id]
                    case Keep():
                        pass
    return store, counts, seen


def test_the_script_has_its_numbers() -> None:
    assert len(SESSIONS) >= 5
    store, counts, _ = replay()
    assert counts == {"Add": 50, "Update": 10, "Delete": 5}
    assert len(store) == len(PROBES) == 45
    assert len(GONE) == 15


def test_every_current_fact_is_stored_and_no_gone_one() -> None:
    store, _, seen = replay()
    texts = [item.fact.text.lower() for item in store]
    missing = [p.expect for p in PROBES if not any(p.expect.lower() in t for t in texts)]
    assert missing == []
    back = [gone for gone in GONE if any(gone.lower() in t for t in texts)]
    assert back == []
    # each gone piece was once a stored fact: the script really supersedes or forgets it
    assert all(any(gone.lower() in t.lower() for t in seen) for gone in GONE)


def test_each_probe_names_a_different_fact() -> None:
    store, _, _ = replay()
    owners = [
        [item.id for item in store if probe.expect.lower() in item.fact.text.lower()]
        for probe in PROBES
    ]
    assert all(len(ids) == 1 for ids in owners)
    assert len({ids[0] for ids in owners}) == len(PROBES)
