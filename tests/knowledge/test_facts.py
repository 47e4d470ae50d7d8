"""Facts from a user's words (the pattern table), mem0's decisions, and the model-assisted
extraction's prompts and tolerant parsers."""

from __future__ import annotations

import json
import time

import pytest

from app.knowledge.facts import (
    Add,
    Change,
    Decision,
    Delete,
    Fact,
    Forget,
    Keep,
    Stored,
    Update,
    decide,
    extract,
    extraction_messages,
    parse_extraction,
    parse_update,
    update_messages,
)

# ---------------------------------------------------------------------------------------------
# extract: what is said


def F(text: str, slot: str | None = None) -> Fact:
    return Fact(text, slot)


STATED: list[tuple[str, list[Change]]] = [
    # name
    ("My name is Ada.", [F("The user's name is Ada.", "name")]),
    ("my name's ada lovelace", [F("The user's name is Ada Lovelace.", "name")]),
    ("Call me Al.", [F("The user's name is Al.", "name")]),
    ("Hi, I'm Ada!", [F("The user's name is Ada.", "name")]),
    ("I'm Ada, nice to meet you.", [F("The user's name is Ada.", "name")]),
    ("Lol I'm Ada.", [F("The user's name is Ada.", "name")]),
    # home and origin
    ("I live in Berlin.", [F("The user lives in Berlin.", "home")]),
    ("I live in Berlin now.", [F("The user lives in Berlin.", "home")]),
    ("We moved to Berlin last month!", [F("The user lives in Berlin.", "home")]),
    ("I've just moved to Munich.", [F("The user lives in Munich.", "home")]),
    ("I'm based in Oslo these days.", [F("The user lives in Oslo.", "home")]),
    ("btw I live in Oslo, Norway.", [F("The user lives in Oslo, Norway.", "home")]),
    ("I live in the Netherlands.", [F("The user lives in the Netherlands.", "home")]),
    ("I live in a small flat in Berlin with my wife.", [F("The user lives in Berlin.", "home")]),
    ("I'm from Porto originally.", [F("The user is from Porto.", "origin")]),
    ("I come from Italy.", [F("The user is from Italy.", "origin")]),
    ("I grew up in Leeds.", [F("The user is from Leeds.", "origin")]),
    ("I was born in Coimbra.", [F("The user was born in Coimbra.", "birthplace")]),
    (
        "I'm originally from Italy but I live in Berlin now.",
        [F("The user is from Italy.", "origin"), F("The user lives in Berlin.", "home")],
    ),
    # work
    ("I work at Siemens.", [F("The user works at Siemens.", "employer")]),
    ("I work for the BBC.", [F("The user works at the BBC.", "employer")]),
    (
        "I work at Feedzai as a data engineer.",
        [
            F("The user works at Feedzai.", "employer"),
            F("The user works as a data engineer.", "job"),
        ],
    ),
    ("I work as a nurse.", [F("The user works as a nurse.", "job")]),
    ("I work as an architect for a living.", [F("The user works as an architect.", "job")]),
    ("I am a nurse.", [F("The user works as a nurse.", "job")]),
    (
        "I'm a software engineer at Google.",
        [
            F("The user works as a software engineer.", "job"),
            F("The user works at Google.", "employer"),
        ],
    ),
    (
        "I'm working as a barista at Blue Bottle.",
        [F("The user works as a barista.", "job"), F("The user works at Blue Bottle.", "employer")],
    ),
    ("My job is product manager.", [F("The user works as a product manager.", "job")]),
    ("I just joined Spotify.", [F("The user works at Spotify.", "employer")]),
    ("I'm retired now.", [F("The user is retired.", "job")]),
    ("I quit my job.", [Forget("employer", ""), Forget("job", "")]),
    # age and birthday
    ("I'm 34 years old.", [F("The user is 34 years old.", "age")]),
    ("I'm 40 today!", [F("The user is 40 years old.", "age")]),
    ("I turned 35 last week.", [F("The user is 35 years old.", "age")]),
    (
        "My birthday is on the 9th of March.",
        [F("The user's birthday is the 9th of March.", "birthday")],
    ),
    ("My birthday's July 4th.", [F("The user's birthday is July 4th.", "birthday")]),
    ("I was born on 3 May 1990.", [F("The user's birthday is 3 May 1990.", "birthday")]),
    # people and pets
    ("My wife is called Inês.", [F("The user's wife is called Inês.", "partner")]),
    ("My husband's name is Tom.", [F("The user's husband is called Tom.", "partner")]),
    ("My girlfriend is Mia.", [F("The user's girlfriend is called Mia.", "partner")]),
    ("I'm married to Sam.", [F("The user is married to Sam.", "partner")]),
    ("My mum is called Helena.", [F("The user's mum is called Helena.", "mother")]),
    ("My sister is called Marta.", [F("The user's sister is called Marta.")]),
    ("I have a brother named Luis.", [F("The user has a brother named Luis.")]),
    ("I have a dog named Rex.", [F("The user has a dog named Rex.", "pet:rex")]),
    ("We also have a cat named Miso.", [F("The user has a cat named Miso.", "pet:miso")]),
    (
        "I've got a golden retriever called Max.",
        [F("The user has a golden retriever named Max.", "pet:max")],
    ),
    ("my dog's name is rex", [F("The user has a dog named Rex.", "pet:rex")]),
    ("I have two kids.", [F("The user has two kids.", "children")]),
    # tastes
    ("I prefer tea over coffee.", [F("The user prefers tea over coffee.", "prefers:coffee/tea")]),
    ("I prefer coffee to tea.", [F("The user prefers coffee over tea.", "prefers:coffee/tea")]),
    ("I prefer to work in the morning.", [F("The user prefers to work in the morning.")]),
    ("I like jazz.", [F("The user likes jazz.")]),
    ("I really love hiking in the mountains.", [F("The user loves hiking in the mountains.")]),
    ("I enjoy playing chess.", [F("The user enjoys playing chess.")]),
    ("I hate coriander.", [F("The user hates coriander.")]),
    ("I can't stand reality TV.", [F("The user hates reality TV.")]),
    ("I don't like horror movies.", [F("The user dislikes horror movies.")]),
    ("I do not like mushrooms.", [F("The user dislikes mushrooms.")]),
    ("I don't like tea anymore", [F("The user dislikes tea.")]),
    ("I love my job.", [F("The user loves their job.")]),
    ("I like tea, not coffee.", [F("The user likes tea.")]),
    ("I'm a big fan of Formula 1.", [F("The user likes Formula 1.")]),
    ("My favourite book is Dune.", [F("The user's favourite book is Dune.", "favourite:book")]),
    ("My favorite color is blue.", [F("The user's favourite color is blue.", "favourite:color")]),
    (
        "My favourite book is Piranesi now.",
        [F("The user's favourite book is Piranesi.", "favourite:book")],
    ),
    ("Dune is my favourite book.", [F("The user's favourite book is Dune.", "favourite:book")]),
    (
        "My favourite movies are Alien and Aliens.",
        [F("The user's favourite movies are Alien and Aliens.", "favourite:movie")],
    ),
    # health, languages, the rest
    ("I'm allergic to peanuts.", [F("The user is allergic to peanuts.")]),
    ("I'm severely allergic to shellfish.", [F("The user is allergic to shellfish.")]),
    ("I have a peanut allergy.", [F("The user is allergic to peanut.")]),
    ("I'm vegetarian.", [F("The user is vegetarian.", "diet")]),
    ("I'm a vegan now.", [F("The user is vegan.", "diet")]),
    ("I speak Portuguese and English.", [F("The user speaks Portuguese and English.")]),
    ("I'm learning Japanese.", [F("The user is learning Japanese.")]),
    ("I drive a Volvo.", [F("The user drives a Volvo.", "car")]),
    # several per message
    (
        "Hi! My name is Ada. I live in Lisbon, and I'm from Porto originally.",
        [
            F("The user's name is Ada.", "name"),
            F("The user lives in Lisbon.", "home"),
            F("The user is from Porto.", "origin"),
        ],
    ),
    (
        "I like jazz, but I hate coriander. What should I cook tonight?",
        [F("The user likes jazz."), F("The user hates coriander.")],
    ),
    (
        "My wife is called Inês and we have a dog named Bolt.",
        [
            F("The user's wife is called Inês.", "partner"),
            F("The user has a dog named Bolt.", "pet:bolt"),
        ],
    ),
    (
        "If I lived in Paris I'd be happy. I live in Lyon.",
        [F("The user lives in Lyon.", "home")],
    ),
]

TAKEN_BACK: list[tuple[str, list[Change]]] = [
    ("Forget that I live in Paris.", [Forget("home", "The user lives in Paris.")]),
    ("Please forget that I like board games.", [Forget(None, "The user likes board games.")]),
    (
        "Please forget that I'm allergic to penicillin, it was a misdiagnosis.",
        [Forget(None, "The user is allergic to penicillin.")],
    ),
    ("Forget that I said my name is Ada.", [Forget("name", "The user's name is Ada.")]),
    ("Can you forget where I live?", [Forget("home", "")]),
    ("forget how old I am", [Forget("age", "")]),
    ("Forget my name.", [Forget("name", "")]),
    ("Please forget my address.", [Forget("home", "")]),
    ("Could you forget my wife's name?", [Forget("partner", "")]),
    ("Forget everything about my job.", [Forget("job", "")]),
    ("Forget my favourite podcast.", [Forget("favourite:podcast", "")]),
    ("Forget my favourite movies.", [Forget("favourite:movie", "")]),
    ("Forget my dog.", [Forget(None, "dog")]),
    ("forget about the dog", [Forget(None, "the dog")]),
    ("Remove my birthday.", [Forget("birthday", "")]),
    ("I no longer live in Paris.", [Forget("home", "The user lives in Paris.")]),
    ("I don't live in Paris anymore.", [Forget("home", "The user lives in Paris.")]),
    ("I moved out of Paris.", [Forget("home", "Paris")]),
    ("I don't work at Acme anymore.", [Forget("employer", "The user works at Acme.")]),
    ("I left Google.", [Forget(None, "Google")]),
    ("I'm not a teacher anymore.", [Forget("job", "The user works as a teacher.")]),
    ("I'm no longer vegetarian.", [Forget("diet", "The user is vegetarian.")]),
    ("I'm not from Italy.", [Forget("origin", "The user is from Italy.")]),
    ("My name is not Ada.", [Forget("name", "The user's name is Ada.")]),
    ("I no longer like tea.", [Forget(None, "The user likes tea.")]),
    ("I'm not learning Japanese anymore.", [Forget(None, "The user is learning Japanese.")]),
    ("I'm no longer allergic to cats.", [Forget(None, "The user is allergic to cats.")]),
    ("I no longer drive a Volvo.", [Forget("car", "The user drives a Volvo.")]),
    ("I don't have a dog anymore.", [Forget(None, "dog")]),
    ("I haven't got a car anymore.", [Forget(None, "car")]),
    ("Sadly, our dog Bolt passed away.", [Forget("pet:bolt", "")]),
    ("My dog died.", [Forget(None, "dog")]),
]

NOTHING = [
    # questions, with or without their mark
    "What is my name?",
    "what is my name",
    "Do you know where I live?",
    "Where do I work these days",
    # hypotheticals, wishes and plans
    "If I lived in Paris, I would eat croissants every day.",
    "Suppose I live in Paris, what then?",
    "I'd love to live in Tokyo.",
    "I'd like a recipe for dinner.",
    "I will move to Berlin next year.",
    "I'm going to work at Google.",
    "I'm thinking about moving to Rome.",
    "I might be allergic to cats.",
    "I'd rather have tea.",
    # the past is not the present
    "I used to live in Paris.",
    # "I'm X" that is no name, "I'm a X" that is no job
    "I'm tired.",
    "I'm sorry.",
    "I'm fine, thanks.",
    "I'm in a hurry.",
    "I'm German.",
    "I'm 5 minutes away.",
    "i'm ada",
    "I'm a big believer in tests.",
    "I'm a morning person.",
    # objects that are not things, work that is no employer
    "I like it.",
    "I love you.",
    "I love that idea.",
    "I hate when that happens.",
    "I like it when you answer briefly.",
    "I work at home.",
    "I work at night.",
    "I joined a gym.",
    "I speak to my mom every day.",
    "I live here.",
    # other people and small talk
    "My friend lives in Paris.",
    "She is called Mia.",
    "Tell me a joke.",
    "I have a question.",
    "Hi!",
    "",
]


@pytest.mark.parametrize(("message", "expected"), STATED, ids=[m for m, _ in STATED])
def test_extract_states(message: str, expected: list[Change]) -> None:
    assert extract(message) == expected


@pytest.mark.parametrize(("message", "expected"), TAKEN_BACK, ids=[m for m, _ in TAKEN_BACK])
def test_extract_takes_back(message: str, expected: list[Change]) -> None:
    assert extract(message) == expected


@pytest.mark.parametrize("message", NOTHING)
def test_extract_finds_nothing(message: str) -> None:
    assert extract(message) == []


def test_extract_reads_curly_apostrophes() -> None:
    assert extract("I\u2019m from Porto.") == [F("The user is from Porto.", "origin")]


# ---------------------------------------------------------------------------------------------
# decide: what it changes

PARIS = Stored("p", F("The user lives in Paris.", "home"))
LYON = Stored("l", F("The user lives in Lyon.", "home"))
TEA = Stored("t", F("The user likes tea."))
REX = Stored("r", F("The user has a dog named Rex.", "pet:rex"))
ACME = Stored("a", F("The user works at Acme.", "employer"))
PEANUTS = Stored("n", F("The user is allergic to peanuts."))

DECIDED: list[tuple[str, list[Stored], list[Decision]]] = [
    # a move supersedes the old home instead of sitting beside it
    ("I moved to Berlin.", [PARIS, TEA], [Update("p", F("The user lives in Berlin.", "home"))]),
    (
        "I live in Berlin.",
        [PARIS, LYON],
        [Update("p", F("The user lives in Berlin.", "home")), Delete("l")],
    ),
    ("I work for Zalando now.", [ACME], [Update("a", F("The user works at Zalando.", "employer"))]),
    # already known
    ("I live in Paris.", [PARIS, TEA], [Keep("p")]),
    ("I live in paris!", [PARIS], [Keep("p")]),
    ("I live in Paris.", [LYON, PARIS], [Keep("p"), Delete("l")]),
    ("I like tea.", [TEA], [Keep("t")]),
    # like -> dislike, like -> love
    ("I don't like tea.", [TEA], [Update("t", F("The user dislikes tea."))]),
    ("I hate tea.", [TEA], [Update("t", F("The user hates tea."))]),
    ("I love tea.", [TEA], [Update("t", F("The user loves tea."))]),
    ("I like coffee.", [TEA], [Add(F("The user likes coffee."))]),
    # new things
    ("I'm allergic to shellfish.", [PEANUTS], [Add(F("The user is allergic to shellfish."))]),
    ("I have a cat named Miso.", [REX], [Add(F("The user has a cat named Miso.", "pet:miso"))]),
    # forget by slot: the slot's facts, only those with the words given
    ("Forget where I live.", [PARIS, LYON, TEA], [Delete("p"), Delete("l")]),
    ("I don't live in Paris anymore.", [PARIS, LYON], [Delete("p")]),
    ("I don't live in Nice anymore.", [PARIS, LYON], []),
    ("I moved out of Lyon.", [PARIS, LYON], [Delete("l")]),
    ("I no longer work at Acme.", [ACME], [Delete("a")]),
    ("Rex died.", [REX, TEA], [Delete("r")]),
    # forget by text
    ("I don't have a dog anymore.", [TEA, REX], [Delete("r")]),
    ("Forget that I'm allergic to peanuts.", [PEANUTS, TEA], [Delete("n")]),
    ("I'm not allergic to cats.", [PEANUTS], []),
    ("Forget that I like tea.", [TEA, PEANUTS], [Delete("t")]),
    ("Forget that I like tea.", [Stored("h", F("The user hates tea."))], []),
    ("I left Acme.", [ACME, PARIS], [Delete("a")]),
    # a message's changes in order: a later one sees the earlier ones
    (
        "I live in Rome. Actually, I moved to Oslo.",
        [PARIS],
        [Update("p", F("The user lives in Oslo.", "home"))],
    ),
    ("I live in Rome. Actually, I moved to Oslo.", [], [Add(F("The user lives in Oslo.", "home"))]),
    ("I like coffee. Forget that I like coffee.", [TEA], []),
    ("I moved to Rome. Forget where I live.", [PARIS], [Delete("p")]),
    ("I like tea. I like tea.", [], [Add(F("The user likes tea."))]),
    (
        "I moved to Berlin. I moved back to Paris.",
        [PARIS, LYON],
        [Keep("p"), Delete("l")],
    ),
]


@pytest.mark.parametrize(
    ("message", "stored", "expected"), DECIDED, ids=[f"{m} {len(s)}" for m, s, _ in DECIDED]
)
def test_decide(message: str, stored: list[Stored], expected: list[Decision]) -> None:
    assert decide(extract(message), stored) == expected


def test_similar_adds_candidates_that_share_words() -> None:
    stored = [TEA, REX, PARIS]
    asked: list[tuple[str, list[str]]] = []

    def similar(text: str, facts: list[Stored]) -> list[Stored]:
        asked.append((text, [item.id for item in facts]))
        return [REX, TEA]

    # "my puppy Rex": the words do not all appear in "has a dog named Rex", half of them do
    assert decide([Forget(None, "puppy Rex")], stored) == []
    assert decide([Forget(None, "puppy Rex")], stored, similar) == [Delete("r")]
    assert asked == [("puppy Rex", ["t", "r", "p"])]


def test_similar_alone_never_deletes() -> None:
    def everything(text: str, facts: list[Stored]) -> list[Stored]:
        return facts

    assert decide([Forget(None, "my hamster Fluffy")], [TEA, REX, PARIS], everything) == []


def test_similar_sees_only_stored_facts() -> None:
    seen: list[list[str]] = []

    def similar(text: str, facts: list[Stored]) -> list[Stored]:
        seen.append([item.id for item in facts])
        return facts

    changes: list[Change] = [F("The user likes cocoa."), Forget(None, "marmite")]
    assert decide(changes, [TEA, PARIS], similar) == [Add(F("The user likes cocoa."))]
    assert seen == [["t", "p"]]


# ---------------------------------------------------------------------------------------------
# Model-assisted: prompts and tolerant parsers


def test_extraction_messages() -> None:
    messages = extraction_messages("I moved to Berlin yesterday.", "2026-12-03")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "2026-12-03" in messages[0]["content"]
    assert '{"facts": [' in messages[0]["content"]
    assert "I moved to Berlin yesterday." in messages[1]["content"]


EXTRACTION_REPLIES: list[tuple[str, list[Fact]]] = [
    (
        '{"facts": ["The user lives in Berlin.", "The user likes tea."]}',
        [F("The user lives in Berlin.", "home"), F("The user likes tea.")],
    ),
    (
        '```json\n{"facts": ["Name is John", "Is a software engineer"]}\n```',
        [F("The user's name is John.", "name"), F("The user works as a software engineer.", "job")],
    ),
    (
        'Sure! Here are the facts I found:\n{"facts": ["The user\'s favourite book is Dune"]}\n'
        "Let me know if you need anything else {or not}.",
        [F("The user's favourite book is Dune.", "favourite:book")],
    ),
    (
        '<think>The user says they moved. {"facts": []}</think>\n'
        '{"facts": ["User moved to Lisbon", "Has a dog named Rex", "Had a meeting with John"]}',
        [
            F("The user lives in Lisbon.", "home"),
            F("The user has a dog named Rex.", "pet:rex"),
            F("Had a meeting with John."),
        ],
    ),
    (
        '{"facts": ["The user plans to visit Japan in May.", "The user lives in Berlin.", '
        '"the user lives in berlin", 3, ""]}',
        [F("The user plans to visit Japan in May."), F("The user lives in Berlin.", "home")],
    ),
    ('{"facts": []}', []),
    ('{"facts": ["The user lives in Berlin.",]}', []),
    ('{"memory": ["The user lives in Berlin."]}', []),
    ('{"facts": "The user lives in Berlin."}', []),
    ('["The user lives in Berlin."]', []),
    ("I could not find any facts.", []),
    ("", []),
]


@pytest.mark.parametrize(("reply", "expected"), EXTRACTION_REPLIES)
def test_parse_extraction(reply: str, expected: list[Fact]) -> None:
    assert parse_extraction(reply) == expected


UUIDS = [
    Stored("5f0c2a8e-1111-4c1e-9a7d-000000000001", F("The user lives in Paris.", "home")),
    Stored("5f0c2a8e-2222-4c1e-9a7d-000000000002", F("The user likes tea.")),
    Stored("5f0c2a8e-3333-4c1e-9a7d-000000000003", F("The user works at Acme.", "employer")),
]


def test_update_messages_number_the_stored_facts() -> None:
    messages = update_messages([F("The user lives in Berlin.", "home")], UUIDS)
    assert [m["role"] for m in messages] == ["system", "user"]
    content = messages[1]["content"]
    assert "5f0c2a8e" not in content
    stored_line, new_line = content.splitlines()
    assert json.loads(stored_line.removeprefix("Stored: ")) == [
        {"id": "0", "text": "The user lives in Paris."},
        {"id": "1", "text": "The user likes tea."},
        {"id": "2", "text": "The user works at Acme."},
    ]
    assert json.loads(new_line.removeprefix("New: ")) == ["The user lives in Berlin."]
    assert "UPDATE" in messages[0]["content"]


PARIS_ID, TEA_ID, ACME_ID = (item.id for item in UUIDS)

UPDATE_REPLIES: list[tuple[str, list[Decision]]] = [
    (
        '{"memory": ['
        '{"id": "0", "text": "The user lives in Berlin.", "event": "UPDATE"},'
        '{"id": "1", "text": "The user likes tea.", "event": "NONE"},'
        '{"id": "2", "text": "The user works at Acme.", "event": "DELETE"},'
        '{"id": "3", "text": "The user has a cat named Tom.", "event": "ADD"}]}',
        [
            Update(PARIS_ID, F("The user lives in Berlin.", "home")),
            Keep(TEA_ID),
            Delete(ACME_ID),
            Add(F("The user has a cat named Tom.", "pet:tom")),
        ],
    ),
    (
        "Here is the updated memory:\n```json\n"
        '{"memory": [{"id": 0, "text": "Moved to Berlin", "event": "update"},'
        ' {"id": "7", "text": "The user likes cats.", "event": "DELETE"},'
        ' {"id": "99", "text": "The user likes coffee.", "event": "UPDATE"}]}\n```\nDone.',
        [Update(PARIS_ID, F("The user lives in Berlin.", "home"))],
    ),
    (
        # a refinement the patterns cannot read keeps the stored slot
        '{"memory": [{"id": "0", "text": "The user splits their time between Paris and Rome.",'
        ' "event": "UPDATE"}]}',
        [Update(PARIS_ID, F("The user splits their time between Paris and Rome.", "home"))],
    ),
    (
        '{"memory": [{"id": "1", "text": "The user likes tea.", "event": "ADD"},'
        ' {"id": "0", "text": "The user lives in Paris.", "event": "UPDATE"},'
        ' {"id": "0", "event": "DELETE"}, {"id": "2", "event": "MERGE"}, "junk", {"id": "2"}]}',
        [Keep(TEA_ID), Keep(PARIS_ID)],
    ),
    ('{"memory": [{"id": "0", "text": "The user lives in Berlin.", "event": "UPDATE"}', []),
    ('{"facts": ["The user lives in Berlin."]}', []),
    ("I think the memory is fine as it is.", []),
    ("", []),
]


@pytest.mark.parametrize(("reply", "expected"), UPDATE_REPLIES)
def test_parse_update(reply: str, expected: list[Decision]) -> None:
    assert parse_update(reply, UUIDS) == expected


@pytest.mark.parametrize(
    "message",
    [
        "forget that " * 5000 + "I live in Paris",
        "I don't " * 5000 + "live in Paris",
        "I like tea" + "," * 50_000 + " x",
        "I like tea" + " ," * 25_000 + "x",
        "I like tea" + "\t" * 50_000 + "x",
        "my favourite " + "a " * 25_000 + "is x",
        "a is " * 10_000 + "my favourite x",
        "I live in Paris" + " now" * 20_000,
        "so, " * 20_000 + "I live in Paris",
    ],
    ids=[
        "forget-nested",
        "negated-nested",
        "commas",
        "spaced-commas",
        "tabs",
        "topic",
        "value",
        "fillers",
        "lead-ins",
    ],
)
def test_extract_stays_linear_on_hostile_input(message: str) -> None:
    """Every user message is read: nested forget requests and denials do not recurse, and long
    runs of commas, tabs, fillers or words do not make a pattern backtrack quadratically."""
    started = time.perf_counter()
    extract(message)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "reply",
    [
        '{"facts": ' + "[" * 100_000,
        '{"a":' * 50_000,
        "{" * 100_000,
        "<think>" * 30_000,
        "```" * 30_000,
    ],
    ids=["deep-list", "deep-object", "braces", "thinking", "fences"],
)
def test_parsers_stay_linear_on_hostile_replies(reply: str) -> None:
    started = time.perf_counter()
    assert parse_extraction(reply) == []
    assert parse_update(reply, UUIDS) == []
    assert time.perf_counter() - started < 5
