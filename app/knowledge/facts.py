"""What a user says about themself, and what it changes in what is remembered (mem0's scheme).

`extract` reads the user's own words with a table of patterns; `decide` turns what it found into
add / update / delete / keep decisions against the stored facts, so that "I moved to Berlin"
replaces "The user lives in Paris." instead of sitting beside it. The model-assisted path asks a
chat model for the same two steps (`extraction_messages`, `update_messages`) and reads its
replies tolerantly (`parse_extraction`, `parse_update`). Pure logic: no I/O, no model calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from string import Formatter


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing known about the user, in the third person ("The user lives in Berlin.").

    `slot` names what it is about when only one value can hold at a time ("home", "employer",
    "pet:rex", "favourite:book", "prefers:coffee/tea"); None for facts that accumulate.
    """

    text: str
    slot: str | None


@dataclass(frozen=True, slots=True)
class Forget:
    """Stored facts to drop: those of `slot` (only those holding `text`'s words when `text` is
    given), or without a slot, those whose words hold `text`'s."""

    slot: str | None
    text: str


Change = Fact | Forget


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    fact: Fact


@dataclass(frozen=True, slots=True)
class Add:
    fact: Fact


@dataclass(frozen=True, slots=True)
class Update:
    """`fact` supersedes the stored fact `id` (same slot or same liked thing, another value)."""

    id: str
    fact: Fact


@dataclass(frozen=True, slots=True)
class Delete:
    id: str


@dataclass(frozen=True, slots=True)
class Keep:
    """No change: the stored fact `id` says it already."""

    id: str


Decision = Add | Update | Delete | Keep

Build = Callable[[re.Match[str]], list[Change]]
Clean = Callable[[str], str | None]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ---------------------------------------------------------------------------------------------
# Values: each cleaner trims a captured value and returns None when it is not one of its kind.

_FILLER = (
    r"now|nowadays|these\s+days|currently|at\s+the\s+moment|right\s+now|for\s+now|any\s*more|"
    r"too|as\s+well|also|again|already|actually|though|originally|by\s+the\s+way|btw|lol|haha|"
    r"a\s+lot|very\s+much|so\s+much|really|recently|lately|yesterday|today|for\s+a\s+living|"
    r"(?:last|this)\s+(?:week|month|year|spring|summer|autumn|fall|winter)|"
    r"(?:a\s+(?:few\s+)?|some\s+|two\s+|three\s+)?(?:days|weeks|months|years)\s+ago|a\s+while\s+ago"
)
_TRAILING = re.compile(rf"(?:[\s,]+(?:{_FILLER})|[\s.!?,;:…\"')(-]+)$", re.IGNORECASE)
_LEADING = re.compile(r"(?:(?:now|currently|also|really|just|actually|still)\s+|[\"'(]+)", re.I)
_PLACE_CUT = re.compile(
    r"\s+(?:with|since|for|because|but|though|although|where|which|who|when|while|after|"
    r"before|until|and\s+(?:work|live|love|like|have|am|study|speak|moved?))\b.*$",
    re.IGNORECASE,
)
_THING_CUT = re.compile(
    r"(?:\s+(?:because|but|though|although|since|unless|except|especially|when|whenever)|"
    r",\s*(?:it|that|this|which|so|not|as|and\s+(?:it|that)))\b.*$",
    re.IGNORECASE,
)
_NOT_VALUES = _words(
    "it it's that this these those you your him her them us me myself what how when where "
    "which who why whether if there here so very"
)
_NOT_NAMES = _words(
    "sorry fine good great okay ok here back home ready done sure happy glad tired busy hungry "
    "not so just also still very really english german french spanish italian portuguese dutch "
    "american british canadian australian irish scottish chinese japanese indian"
)
_NOT_EMPLOYERS = frozenset(
    {"home", "night", "nights", "weekends", "the weekend", "the weekends", "myself", "a living"}
)
_PREPOSITIONS = _words("to with about for up out on at in of")
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b"
)
_DATE = re.compile(rf"\b{_MONTH}|\d", re.IGNORECASE)
_NOT_PLACE = re.compile(rf"\d|{_MONTH}", re.IGNORECASE)
_NAME_WORD = re.compile(r"[^\W\d_][\w'-]*")
_JOBS = _words(
    "engineer developer programmer designer architect manager director analyst scientist "
    "researcher consultant accountant lawyer attorney doctor physician surgeon nurse dentist "
    "pharmacist vet veterinarian teacher professor lecturer tutor student intern writer author "
    "journalist editor translator photographer artist musician painter actor actress chef cook "
    "baker barista waiter waitress bartender pilot driver mechanic electrician plumber carpenter "
    "farmer firefighter officer soldier librarian cashier clerk secretary assistant "
    "administrator technician therapist psychologist psychiatrist paramedic midwife "
    "entrepreneur founder freelancer banker economist mathematician physicist chemist biologist "
    "statistician marketer recruiter coach trainer instructor caregiver cleaner builder dancer "
    "singer composer producer filmmaker ceo cto cfo"
)
_PETS = _words(
    "dog cat puppy kitten rabbit bunny hamster parrot budgie bird horse pony fish goldfish "
    "turtle tortoise snake lizard gecko ferret pig retriever labrador poodle terrier beagle "
    "spaniel collie shepherd bulldog dachshund husky"
)
_RELATIVES: dict[str, str | None] = {
    **dict.fromkeys(
        ["wife", "husband", "partner", "girlfriend", "boyfriend", "spouse", "fiance", "fiancee"],
        "partner",
    ),
    **dict.fromkeys(["mother", "mom", "mum"], "mother"),
    **dict.fromkeys(["father", "dad"], "father"),
    **dict.fromkeys(["boss", "manager"], "boss"),
    **dict.fromkeys(["sister", "brother", "son", "daughter", "best friend"], None),
}
_OPINION_VERBS = {
    "like": "likes",
    "love": "loves",
    "adore": "loves",
    "enjoy": "enjoys",
    "hate": "hates",
    "detest": "hates",
    "loathe": "hates",
    "can't stand": "hates",
    "cannot stand": "hates",
    "dislike": "dislikes",
    "don't like": "dislikes",
    "do not like": "dislikes",
    "don't enjoy": "dislikes",
    "do not enjoy": "dislikes",
    "don't care for": "dislikes",
    "do not care for": "dislikes",
}


def _trim(value: str) -> str:
    """Without surrounding punctuation, quotes and fillers ("now", "these days", "too")."""
    value = value.strip()
    start, end = 0, len(value)
    while True:
        # one piece at a time, looked for near the ends only: linear however many there are
        if tail := _TRAILING.search(value, max(start, end - 40), end):
            end = tail.start()
        elif lead := _LEADING.match(value, start, end):
            start = lead.end()
        else:
            return value[start:end]


def _short(value: str, words: int) -> str | None:
    parts = value.split()
    if not parts or len(parts) > words or parts[0].lower() in _NOT_VALUES:
        return None
    return value


def _with_article(value: str) -> str:
    bare = re.sub(r"^(?:an?|the)\s+", "", value, flags=re.IGNORECASE)
    return f"{'an' if bare[:1].lower() in 'aeiou' else 'a'} {bare}"


def _thing(value: str) -> str | None:
    value = _trim(_THING_CUT.sub("", value))
    return _short(re.sub(r"\bmy\b", "their", value, flags=re.IGNORECASE), 8)


def _language(value: str) -> str | None:
    thing = _thing(value)
    return thing if thing and thing.split()[0].lower() not in _PREPOSITIONS else None


def _place(value: str) -> str | None:
    value = _trim(_PLACE_CUT.sub("", value))
    # "a small flat in Berlin" names Berlin
    if re.match(r"(?:an?|my|our)\s", value, re.IGNORECASE) and " in " in value:
        value = value.rsplit(" in ", 1)[1]
    return _short(value, 6)


def _birthplace(value: str) -> str | None:
    """A place one was born in, not a year or a month ("born in 1990")."""
    return None if _NOT_PLACE.match(value) else _place(value)


def _employer(value: str) -> str | None:
    place = _place(value)
    return place if place and place.lower() not in _NOT_EMPLOYERS else None


def _company(value: str) -> str | None:
    """An employer named as a proper noun ("I joined Google", not "I joined a gym")."""
    employer = _employer(value)
    return employer if employer and employer[0].isupper() else None


def _name_as_written(value: str) -> str | None:
    value = _trim(re.split(r",|\s+(?:and|but|from|by)\s", value, maxsplit=1)[0])
    words = value.split()
    if not 0 < len(words) <= 3 or not all(_NAME_WORD.fullmatch(word) for word in words):
        return None
    return None if words[0].lower() in _NOT_NAMES else value


def _name(value: str) -> str | None:
    """A name as written, or capitalised when written all in lower case ("ada" -> "Ada")."""
    name = _name_as_written(value)
    if name and name.islower():
        return " ".join(word.capitalize() for word in name.split())
    return name


def _proper(value: str) -> str | None:
    """A name written with capitals ("I'm Ada", never "I'm tired")."""
    name = _name_as_written(value)
    return name if name and all(word[0].isupper() for word in name.split()) else None


def _noun(value: str) -> str | None:
    """A short noun phrase with its article ("a nurse", "an Audi")."""
    noun = _short(_trim(re.sub(r"^(?:an?|the)\s+", "", value, flags=re.IGNORECASE)), 5)
    return _with_article(noun) if noun else None


def _occupation(value: str) -> str | None:
    """A job after "I'm a …": only when its last word is a job ("I'm a big fan" is not)."""
    job = _noun(value)
    return job if job and _stem(job.split()[-1].lower()) in _JOBS else None


def _number(value: str) -> str | None:
    return str(int(value)) if value.isdigit() and 0 < int(value) < 130 else None


def _date(value: str) -> str | None:
    value = _trim(re.sub(r"^on\s+", "", value, flags=re.IGNORECASE))
    return value if _DATE.search(value) and len(value.split()) <= 6 else None


def _topic(value: str) -> str | None:
    value = _trim(value).lower()
    return value if re.fullmatch(r"[a-z-]+(?: [a-z-]+){0,2}", value) else None


def _opinion_verb(value: str) -> str | None:
    return _OPINION_VERBS.get(re.sub(r"\s+(?:really\s+)?", " ", value.lower()))


def _word(value: str) -> str:
    return re.sub(r"\s+", " ", value.lower())


def _topic_slot(topic: str) -> str:
    """ "favourite:movie" for "favourite movies" and "favourite movie" alike."""
    *words, last = topic.split()
    return "favourite:" + " ".join([*words, _stem(last)])


# ---------------------------------------------------------------------------------------------
# Builders: what a matched pattern says.


def _fact(template: str, slot: str | None = None, **clean: Clean) -> Build:
    """One fact from the named groups `template` and `slot` use, each through its cleaner
    (`_thing` unless named); nothing when a group is missing or its value is rejected."""
    names = {
        field
        for text in (template, slot or "")
        for _, field, _, _ in Formatter().parse(text)
        if field
    }

    def build(match: re.Match[str]) -> list[Change]:
        values: dict[str, str] = {}
        for name in names:
            raw = match.group(name)
            value = None if raw is None else clean.get(name, _thing)(raw)
            if value is None:
                return []
            values[name] = value
        key = slot.format_map({k: v.lower() for k, v in values.items()}) if slot else None
        return [Fact(template.format_map(values), key)]

    return build


def _with(main: Build, extra: Build) -> Build:
    """What `main` makes and, when it makes something, what `extra` makes too."""

    def build(match: re.Match[str]) -> list[Change]:
        changes = main(match)
        return changes + extra(match) if changes else []

    return build


def _forget(*slots: str) -> Build:
    return lambda match: [Forget(slot, "") for slot in slots]


def _forget_value(slot: str | None, clean: Clean = _thing) -> Build:
    def build(match: re.Match[str]) -> list[Change]:
        value = clean(match.group("v"))
        return [Forget(slot, value)] if value else []

    return build


def _prefer(match: re.Match[str]) -> list[Change]:
    first, second = _thing(match.group("a")), _thing(match.group("b"))
    if not first or not second:
        return []
    pair = "/".join(sorted([first.lower(), second.lower()]))
    return [Fact(f"The user prefers {first} over {second}.", f"prefers:{pair}")]


def _favourite(match: re.Match[str]) -> list[Change]:
    topic, value = _topic(match.group("topic")), _thing(match.group("v"))
    if not topic or not value:
        return []
    be = "are" if match.group("be").strip().lower() == "are" else "is"
    return [Fact(f"The user's favourite {topic} {be} {value}.", _topic_slot(topic))]


def _has_named(match: re.Match[str]) -> list[Change]:
    """ "I have a dog named Rex": a pet (its own slot) or anyone else."""
    kind, name = _word(match.group("kind")), _name(match.group("name"))
    if not kind or not name or len(kind.split()) > 3:
        return []
    slot = f"pet:{name.lower()}" if _stem(kind.split()[-1]) in _PETS else None
    return [Fact(f"The user has {_with_article(kind)} named {name}.", slot)]


def _named(clean: Clean) -> Build:
    """ "my wife is called Mia", "my dog's name is Rex"."""

    def build(match: re.Match[str]) -> list[Change]:
        who, name = _word(match.group("who")), clean(match.group("name"))
        if not who or not name:
            return []
        if who in _RELATIVES:
            return [Fact(f"The user's {who} is called {name}.", _RELATIVES[who])]
        if _stem(who.split()[-1]) in _PETS:
            return [Fact(f"The user has {_with_article(who)} named {name}.", f"pet:{name.lower()}")]
        return []

    return build


def _gone_pet(match: re.Match[str]) -> list[Change]:
    return [Forget(f"pet:{match.group('name').lower()}", "")]


_SLOT_WORDS = {
    "name": "name",
    "address": "home",
    "home": "home",
    "hometown": "origin",
    "age": "age",
    "birthday": "birthday",
    "job": "job",
    "occupation": "job",
    "employer": "employer",
    "workplace": "employer",
    "company": "employer",
    "diet": "diet",
    "car": "car",
    "kids": "children",
    "children": "children",
    **{who: slot for who, slot in _RELATIVES.items() if slot},
}
_QUESTION_SLOTS = {
    "where i live": "home",
    "where i'm from": "origin",
    "where i come from": "origin",
    "where i work": "employer",
    "what i do": "job",
    "how old i am": "age",
    "when my birthday is": "birthday",
}


def _forget_mine(match: re.Match[str]) -> list[Change]:
    """ "forget my birthday", "forget my wife's name", "forget my dog"."""
    what = re.sub(r"(?:'s)?\s+name$", "", _word(_trim(match.group("v"))))
    if what in _SLOT_WORDS:
        return [Forget(_SLOT_WORDS[what], "")]
    thing = _thing(what)
    return [Forget(None, thing)] if thing else []


def _forget_favourite(match: re.Match[str]) -> list[Change]:
    topic = _topic(match.group("topic"))
    return [Forget(_topic_slot(topic), "")] if topic else []


def _forget_question(match: re.Match[str]) -> list[Change]:
    return [Forget(_QUESTION_SLOTS[_word(match.group("q"))], "")]


_SAID = re.compile(r"^I\s+(?:said|told\s+you|mentioned)\s+(?:that\s+)?", re.IGNORECASE)


def _forget_that(match: re.Match[str]) -> list[Change]:
    """ "forget that I live in Paris": the facts the clause states, else its words."""
    forgets: list[Change] = []
    for said in _CLAUSE.split(match.group("v")):
        part = _clause_text(_SAID.sub("", _lead_stripped(said)))
        if facts := _stated(part):
            forgets.extend(_as_forgets(facts))
        elif (words := _thing(part)) and _keywords(words):
            forgets.append(Forget(None, words))
    return forgets


def _as_forgets(facts: list[Fact]) -> list[Change]:
    return [Forget(fact.slot, fact.text) for fact in facts]


# ---------------------------------------------------------------------------------------------
# The pattern table: each clause is matched whole against the rows in order; the first row whose
# builder makes something wins. Tokens in <angle brackets> are shared pieces.

_TOKENS = {
    "<we-have>": r"(?:I|we)(?:'ve\s+got|\s+<adv>(?:have\s+got|have|got|own))\s+",
    "<we-are>": r"(?:I'm|I\s+am|we're|we\s+are)\s+",
    "<im>": r"I(?:'m|\s+am)\s+",
    "<we>": r"(?:I|we)\s+",
    "<i>": r"I\s+",
    "<adv>": (
        r"(?:(?:now|currently|actually|really|also|still|just|recently|finally|officially|"
        r"originally|absolutely|totally|truly|quite|mostly|usually|definitely|already|even|do|"
        r"genuinely|honestly|seriously|personally|kind\s+of|sort\s+of)\s+)*"
    ),
    "<fav>": r"(?:new\s+|all[- ]time\s+|current\s+)?favou?rite",
    "<forget>": r"(?:forget|delete|erase|remove)\s+",
    "<gone>": r"\s+(?:has\s+)?(?:died|passed\s+away|ran\s+away)",
    "<who>": r"(?P<who>[a-z]+(?:\s+[a-z]+)?)",
}


def _rx(pattern: str) -> re.Pattern[str]:
    for token, regex in _TOKENS.items():
        pattern = pattern.replace(token, regex)
    return re.compile(pattern, re.IGNORECASE)


_LIVES = _fact("The user lives in {place}.", "home", place=_place)
_FROM = _fact("The user is from {place}.", "origin", place=_place)
_WORKS_AT = _fact("The user works at {org}.", "employer", org=_employer)
_WORKS_AS = _fact("The user works as {job}.", "job", job=_noun)
_AGE = _fact("The user is {age} years old.", "age", age=_number)
_CAR = _fact("The user drives {car}.", "car", car=_noun)
_NAME = _fact("The user's name is {name}.", "name", name=_name)
_KIDS = _fact("The user has {n} {kids}.", "children", n=_word, kids=_word)
_AS_JOB = r"(?:\s+as\s+(?P<job>.+))?"


def _table(rows: list[tuple[str, Build]]) -> list[tuple[re.Pattern[str], Build]]:
    return [(_rx(pattern), build) for pattern, build in rows]


# forget requests and things that ended
_ENDINGS = _table(
    [
        (r"<forget>(?:about\s+)?my\s+<fav>\s+(?P<topic>.+)", _forget_favourite),
        (r"<forget>(?P<q>where\s+I\s+live|where\s+I'm\s+from|where\s+I\s+come\s+from|"
         r"where\s+I\s+work|what\s+I\s+do|how\s+old\s+I\s+am|when\s+my\s+birthday\s+is)",
         _forget_question),
        (r"<forget>(?:(?:everything\s+)?about\s+)?my\s+(?P<v>.+)", _forget_mine),
        (r"<forget>(?:that\s+|about\s+)?(?P<v>.+)", _forget_that),
        (r"(?:(?:my|our)\s+[\w-]+\s+)?(?P<name>[\w-]+)<gone>", _gone_pet),
        (r"(?:my|our)\s+(?P<v>[\w\s-]+?)<gone>", _forget_value(None)),
        (r"<we><adv>moved\s+(?:out\s+of|away\s+from)\s+(?P<v>.+)", _forget_value("home", _place)),
        (r"<we><adv>left\s+(?P<v>.+)", _forget_value(None, _company)),
        (r"I\s+(?:quit|lost|left)\s+my\s+job|I\s+(?:got|was)\s+(?:laid\s+off|fired)|"
         r"<im>(?:unemployed|between\s+jobs)", _forget("employer", "job")),
    ]
)  # fmt: skip

# what the user states: each row makes facts
_STATEMENTS = _table(
    [
        # I'm …
        (r"<im><adv>(?P<age>\d+)(?:\s+years?(?:\s+old)?|\s*y/?o)?", _AGE),
        (r"<im><adv>(?:an?\s+)?(?P<diet>vegetarian|vegan|pescatarian|pescetarian)",
         _fact("The user is {diet}.", "diet", diet=_word)),
        (r"(?:<im>|<i>|I've\s+)<adv>retired", _fact("The user is retired.", "job")),
        (r"<im><adv>(?:severely\s+|very\s+|mildly\s+)?allergic\s+to\s+(?P<v>.+)",
         _fact("The user is allergic to {v}.")),
        (r"<i><adv>have\s+an?\s+(?P<v>[\w\s-]+?)\s+allergy", _fact("The user is allergic to {v}.")),
        (r"<im><adv>learning\s+(?P<v>.+)", _fact("The user is learning {v}.")),
        (r"<im><adv>from\s+(?P<place>.+)", _FROM),
        (r"<we-are><adv>(?:living|based)\s+in\s+(?P<place>.+)", _LIVES),
        (r"<im><adv>married\s+to\s+(?P<name>.+)",
         _fact("The user is married to {name}.", "partner", name=_name)),
        (r"<im><adv>(?:working|employed)\s+(?:at|for|by)\s+(?P<org>.+?)" + _AS_JOB,
         _with(_WORKS_AT, _WORKS_AS)),
        (r"<im><adv>working\s+as\s+(?P<job>.+?)(?:\s+(?:at|for)\s+(?P<org>.+))?",
         _with(_WORKS_AS, _WORKS_AT)),
        (r"<im><adv>(?:an?\s+)?(?:big\s+|huge\s+)?fan\s+of\s+(?P<v>.+)",
         _fact("The user likes {v}.")),
        (r"<im><adv>(?P<job>an?\s+.+?)(?:\s+(?:at|for|with)\s+(?P<org>.+))?",
         _with(_fact("The user works as {job}.", "job", job=_occupation), _WORKS_AT)),
        (r"<im>(?P<name>.+)", _fact("The user's name is {name}.", "name", name=_proper)),
        # I …
        (r"<we><adv>(?:live|reside)\s+in\s+(?P<place>.+)", _LIVES),
        (r"(?:I|we)(?:'ve|\s+have)?\s+<adv>(?:moved|relocated)\s+(?:back\s+)?(?:to|into)\s+"
         r"(?P<place>.+)", _LIVES),
        (r"<we><adv>(?:come\s+from|grew\s+up\s+in)\s+(?P<place>.+)", _FROM),
        (r"<i><adv>was\s+born\s+in\s+(?P<place>.+)",
         _fact("The user was born in {place}.", "birthplace", place=_birthplace)),
        (r"<i><adv>was\s+born\s+on\s+(?P<date>.+)",
         _fact("The user's birthday is {date}.", "birthday", date=_date)),
        (r"<i><adv>work\s+(?:at|for)\s+(?P<org>.+?)" + _AS_JOB, _with(_WORKS_AT, _WORKS_AS)),
        (r"<i><adv>work\s+as\s+(?P<job>.+?)(?:\s+(?:at|for)\s+(?P<org>.+))?",
         _with(_WORKS_AS, _WORKS_AT)),
        (r"(?:I|I've|I\s+have)\s+<adv>(?:joined|started\s+(?:a\s+new\s+job\s+|working\s+)?at|"
         r"got\s+a\s+(?:new\s+)?job\s+at)\s+(?P<org>.+?)" + _AS_JOB,
         _with(_fact("The user works at {org}.", "employer", org=_company), _WORKS_AS)),
        (r"<i><adv>turned\s+(?P<age>\d+)", _AGE),
        (r"<i><adv>prefer\s+(?P<a>.+?)\s+(?:over|to|rather\s+than|instead\s+of|more\s+than)\s+"
         r"(?P<b>.+)", _prefer),
        (r"<i><adv>prefer\s+(?P<v>.+)", _fact("The user prefers {v}.")),
        (r"<i><adv>(?P<verb>like|love|adore|enjoy|hate|detest|loathe|dislike|can't\s+stand|"
         r"cannot\s+stand|(?:don't|do\s+not)\s+(?:really\s+)?(?:like|enjoy|care\s+for))\s+"
         r"(?P<v>.+)", _fact("The user {verb} {v}.", verb=_opinion_verb)),
        (r"<i><adv>speak\s+(?P<v>.+)", _fact("The user speaks {v}.", v=_language)),
        (r"<i><adv>drive\s+(?P<car>an?\s+.+)", _CAR),
        (r"<we-have>(?P<n>\d+|no|one|two|three|four|five|six|seven|eight|nine|ten|an?)\s+"
         r"(?P<kids>kids?|child|children)", _KIDS),
        (r"<we-have>(?:an?\s+)(?:new\s+)?(?P<kind>[\w\s-]+?)\s+(?:named|called)\s+"
         r"(?P<name>.+)", _has_named),
        # my …
        (r"my\s+name(?:'s|\s+is)\s+(?P<name>.+)", _NAME),
        (r"(?:you\s+can\s+|please\s+)?call\s+me\s+(?P<name>.+)",
         _fact("The user's name is {name}.", "name", name=_proper)),
        (r"my\s+age\s+is\s+(?P<age>\d+)", _AGE),
        (r"my\s+birthday(?:'s|\s+is)\s+(?P<date>.+)",
         _fact("The user's birthday is {date}.", "birthday", date=_date)),
        (r"my\s+<fav>\s+(?P<topic>[\w\s-]+?)(?P<be>'s|\s+is|\s+are)\s+(?P<v>.+)", _favourite),
        (r"my\s+(?:employer|company)\s+is\s+(?P<org>.+)", _WORKS_AT),
        (r"my\s+(?:job|job\s+title|occupation|profession)\s+is\s+(?P<job>.+)", _WORKS_AS),
        (r"my\s+car\s+is\s+(?P<car>an?\s+.+)", _CAR),
        (r"(?:my|our)\s+<who>(?:'s\s+name\s+is|\s+is\s+(?:called|named))\s+(?P<name>.+)",
         _named(_name)),
        (r"(?:my|our)\s+<who>\s+is\s+(?P<name>.+)", _named(_proper)),
        (r"(?P<v>.+?)\s+(?P<be>is|are)\s+(?:now\s+|still\s+)?my\s+<fav>\s+(?P<topic>.+)",
         _favourite),
    ]
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Reading a message: sentences, then clauses, each matched whole.

_SENTENCE = re.compile(r"(?<=[.!?;]) ")
_CLAUSE = re.compile(
    r",?\s+(?:and|but|so)\s+(?=(?:I|my|we|our)\b)|,\s*(?=(?:I|my|we|our)\b)", re.IGNORECASE
)
_LEAD = re.compile(
    r"(?:(?:hi|hello|hey)(?:\s+there)?|oh|ok|okay|well|so|and|but|also|btw|lol|haha|"
    r"by\s+the\s+way|fyi|for\s+the\s+record|just\s+so\s+you\s+know|actually|anyway|honestly|"
    r"to\s+be\s+honest|sadly|luckily|fun\s+fact|as\s+you\s+know|good\s+news|update|"
    r"(?:please\s+)?(?:remember|note)(?:\s+that)?|these\s+days|nowadays|now|currently|"
    r"at\s+the\s+moment|right\s+now|yes|yeah|no)\b[\s,:;!.-]*",
    re.IGNORECASE,
)
_ASK_TO_FORGET = re.compile(
    r"(?:(?:can|could|would|will)\s+you\s+)?(?:please\s+)?(?=(?:forget|delete|erase|remove)\b)",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"(?:what|where|who|whom|whose|when|why|how|which|do|does|did|is|are|am|was|were|can|could|"
    r"would|should|will|shall)\b",
    re.IGNORECASE,
)
_HYPOTHETICAL = re.compile(
    r"\b(?:if|suppose|supposing|imagine|pretend|hypothetically|unless|whether)\b", re.IGNORECASE
)
_MODAL = re.compile(
    r"\b(?:would|could|might|should|maybe|perhaps|probably|wish|hope|(?:I|we)\s+will|i'd|i'll|"
    r"we'd|we'll|want\s+to|wanna|plan\s+to|planning\s+to|going\s+to|gonna|thinking\s+of|"
    r"thinking\s+about|considering)\b",
    re.IGNORECASE,
)
# what a negation takes away to leave the statement it denies
_NEGATION = re.compile(
    r"\b(?:no\s+longer|do\s+not|does\s+not|don't|doesn't|dont)\s+|\s+not\b|"
    r"(?<=have)n't\b|(?<=has)n't\b|(?<=is)n't\b|(?<=are)n't\b|\s*\bany\s*more\b",
    re.IGNORECASE,
)
_HAVE = _rx(r"<we-have>(?:an?\s+|any\s+|my\s+|our\s+)?(?P<v>.+)")


_ABOUT_THEM = re.compile(
    r"\b(?:i|i'm|im|i've|ive|me|my|mine|we|we're|our|us|forget|passed\s+away|died)\b",
    re.IGNORECASE,
)
"""Words one of the patterns needs: a message without any (most questions) is not read further,
as this runs on every turn."""


def extract(message: str) -> list[Change]:
    """The facts a user's message states about them and the ones it takes back, in order.

    Questions, hypotheticals ("if I lived in Paris") and plans ("I'll move") state nothing.
    "I'm X" is a name only when X is written with capitals, so that "I'm tired" is not one.
    """
    if not _ABOUT_THEM.search(message.replace("\u2019", "'")):
        return []
    changes: list[Change] = []
    for line in message.replace("\u2019", "'").splitlines():
        for sentence in _SENTENCE.split(" ".join(line.split())):
            changes.extend(_read_sentence(sentence))
    return changes


def _read_sentence(sentence: str) -> list[Change]:
    sentence = _lead_stripped(sentence)
    if ask := _ASK_TO_FORGET.match(sentence):
        return _read_clause(sentence[ask.end() :])
    if sentence.endswith("?") or _QUESTION.match(sentence) or _HYPOTHETICAL.search(sentence):
        return []
    return [change for clause in _CLAUSE.split(sentence) for change in _read_clause(clause)]


def _lead_stripped(text: str) -> str:
    text, start = text.strip(), 0
    while lead := _LEAD.match(text, start):
        start = lead.end()
    return text[start:].strip()


def _clause_text(clause: str) -> str:
    """The clause without lead-ins and fillers; "" for a wish or a plan ("I'd like", "I'll")."""
    clause = _trim(_lead_stripped(clause))
    return "" if _MODAL.search(clause) else clause


def _read_clause(clause: str) -> list[Change]:
    clause = _clause_text(clause)
    if not clause:
        return []
    for pattern, build in _ENDINGS:
        if (match := pattern.fullmatch(clause)) and (changes := build(match)):
            return changes
    if facts := _stated(clause):
        return list(facts)
    # a denial takes back what it denies: "I don't live in Paris anymore"
    stated = _NEGATION.sub("", clause)
    if stated == clause:
        return []
    if facts := _stated(stated):
        return _as_forgets(facts)
    had = _HAVE.fullmatch(stated)
    thing = _thing(had.group("v")) if had else None
    return [Forget(None, thing)] if thing else []


def _stated(clause: str) -> list[Fact]:
    for pattern, build in _STATEMENTS:
        match = pattern.fullmatch(clause)
        if match and (facts := [change for change in build(match) if isinstance(change, Fact)]):
            return facts
    return []


# ---------------------------------------------------------------------------------------------
# Deciding: what the changes do to the stored facts.

_STOP = _words(
    "a an the user is are am was were be been to of in at on for with and or my me i that this "
    "it its has have had named called about you your their they he she his her what where when "
    "how forget remember mention mentioned said told tell say anymore longer no not don't do "
    "does"
)
_OPINION = re.compile(
    r"the user (likes|loves|enjoys|adores|hates|dislikes|detests) (.+?)[.!]?", re.IGNORECASE
)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _keywords(text: str) -> set[str]:
    words = (word.removesuffix("'s") for word in re.findall(r"[\w']+", text.lower()))
    return {_stem(word) for word in words if word not in _STOP}


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[\w']+", text.lower()))


def _opinion(text: str) -> tuple[bool, str] | None:
    """(whether it is liked, the thing) for "The user likes tea." and its kin."""
    match = _OPINION.fullmatch(text.strip())
    if not match:
        return None
    return match.group(1).lower() in ("likes", "loves", "enjoys", "adores"), _norm(match.group(2))


def _rivals(old: Fact, new: Fact) -> bool:
    """Whether `new` says something else about what `old` is about."""
    if _norm(old.text) == _norm(new.text):
        return False
    if new.slot is not None:
        return old.slot == new.slot
    opinion = _opinion(new.text)
    old_opinion = _opinion(old.text)
    return opinion is not None and old_opinion is not None and opinion[1] == old_opinion[1]


def decide(
    changes: list[Change],
    stored: list[Stored],
    similar: Callable[[str, list[Stored]], list[Stored]] | None = None,
) -> list[Decision]:
    """Add / update / delete / keep, the changes applied in order to the stored facts.

    A fact with the slot (or the liked thing) of stored ones updates the first and deletes the
    rest; one already stored is kept. `similar(text, facts)`, when given, returns the facts
    nearest to a forget request's text: extra candidates, deleted only when they share at least
    half of its key words. Decisions come in the order the facts were first touched.
    """
    before = {item.id: item.fact for item in stored}
    current: dict[str | int, Fact] = {item.id: item.fact for item in stored}  # new: by number
    touched: dict[str | int, None] = {}  # in the order first touched
    for change in changes:
        if isinstance(change, Forget):
            for key in _forgotten(change, current, similar):
                del current[key]
                touched[key] = None
            continue
        same = [key for key, fact in current.items() if _norm(fact.text) == _norm(change.text)]
        rivals = [key for key, fact in current.items() if _rivals(fact, change)]
        if same:
            touched[same[0]] = None
        elif rivals:
            current[rivals[0]] = change
            touched[rivals.pop(0)] = None
        else:
            new = len(touched)
            current[new] = change
            touched[new] = None
        for key in rivals:
            del current[key]
            touched[key] = None
    decisions: list[Decision] = []
    for key in touched:
        if isinstance(key, int):
            if key in current:
                decisions.append(Add(current[key]))
        elif key not in current:
            decisions.append(Delete(key))
        elif current[key] != before[key]:
            decisions.append(Update(key, current[key]))
        else:
            decisions.append(Keep(key))
    return decisions


def _forgotten(
    forget: Forget,
    current: dict[str | int, Fact],
    similar: Callable[[str, list[Stored]], list[Stored]] | None,
) -> list[str | int]:
    """What `forget` takes away of the current facts (stored ones by id, new ones by number)."""
    keys = _keywords(forget.text)
    if forget.slot is not None:
        return [
            k
            for k, fact in current.items()
            if fact.slot == forget.slot and keys <= _keywords(fact.text)
        ]
    opinion = _opinion(forget.text)
    if opinion is not None:
        return [k for k, fact in current.items() if _opinion(fact.text) == opinion]
    if not keys:
        return []
    hits = [k for k, fact in current.items() if keys <= _keywords(fact.text)]
    if similar is not None:
        pool = [Stored(k, fact) for k, fact in current.items() if isinstance(k, str)]
        for near in similar(forget.text, pool):
            shared = keys & _keywords(current[near.id].text) if near.id in current else set()
            if near.id not in hits and shared and 2 * len(shared) >= len(keys):
                hits.append(near.id)
    return hits


# ---------------------------------------------------------------------------------------------
# Model-assisted: the same two steps asked of a chat model.

_EXTRACTION_PROMPT = """\
You keep notes about a user so that an assistant remembers them in later conversations. Read \
the user's message and list what it says about the user that is worth remembering: name, where \
they live and come from, work, age, birthday, family and pets, languages, health (allergies, \
diet), likes and dislikes, favourites, preferences, plans.

- Only what the user states about themself. Questions, hypotheticals ("if I lived in Rome") \
and what others think are not facts.
- One short fact per item, in the third person, beginning with "The user" \
("The user lives in Berlin.").
- When the user says something stopped being true, write it as it is now \
("The user no longer works at Acme.").
- Today is {today}: write dates, not "tomorrow" or "last week".
- Answer with JSON only: {{"facts": ["...", "..."]}}, or {{"facts": []}} when there is nothing \
to remember.

Examples:
Message: What's the weather like in Rome?
{{"facts": []}}
Message: Hi, I'm Sam. I work as a nurse and I can't stand coffee.
{{"facts": ["The user's name is Sam.", "The user works as a nurse.", "The user hates coffee."]}}
Message: If I were rich I'd buy a boat. My favourite film is Alien.
{{"facts": ["The user's favourite film is Alien."]}}
"""

_UPDATE_PROMPT = """\
You keep a user's memory up to date. You get the facts stored so far, each with an id, and new \
facts just learned. Decide for each one what happens:

- ADD: a new fact that nothing stored says. Give it a new id.
- UPDATE: a stored fact that a new one changes or refines (same subject, other value: a new \
home, a new job, liking something they disliked). Keep the stored id; the text is the new fact.
- DELETE: a stored fact that a new one says is no longer true. Keep the stored id.
- NONE: a stored fact that stays as it is, or a new fact already stored. Keep the stored id.

Use only the ids given for UPDATE, DELETE and NONE. Answer with JSON only, one item per stored \
fact and per added fact:
{"memory": [{"id": "0", "text": "...", "event": "ADD|UPDATE|DELETE|NONE"}]}

Example:
Stored: [{"id": "0", "text": "The user lives in Paris."},
 {"id": "1", "text": "The user likes tea."}]
New: ["The user moved to Berlin.", "The user has a cat named Tom."]
{"memory": [{"id": "0", "text": "The user lives in Berlin.", "event": "UPDATE"},
 {"id": "1", "text": "The user likes tea.", "event": "NONE"},
 {"id": "2", "text": "The user has a cat named Tom.", "event": "ADD"}]}
"""

_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_OBJECT_START = re.compile(r'\{\s*"')
_SUBJECT = re.compile(r"(?:the\s+)?user(?P<own>'s)?\s+", re.IGNORECASE)
_OWNED = frozenset(
    {"name", "age", "birthday", "favourite", "favorite", "job", "employer", *_RELATIVES}
)
_FIRST_PERSON_VERBS = {"is": "am", "has": "have", "does": "do", "doesn't": "don't"}


def extraction_messages(user_text: str, today: str) -> list[dict[str, str]]:
    """A chat asking a model for the facts of the user's message, as {"facts": [...]}."""
    return [
        {"role": "system", "content": _EXTRACTION_PROMPT.format(today=today)},
        {"role": "user", "content": f"Message: {user_text}"},
    ]


def parse_extraction(reply: str) -> list[Fact]:
    """The facts of a model's reply; [] when it holds no {"facts": [...]} object."""
    data = _json_object(reply)
    items = data.get("facts") if data else None
    if not isinstance(items, list):
        return []
    facts: dict[str, Fact] = {}
    for item in items:
        if isinstance(item, str) and item.strip():
            fact = _infer(item)
            facts.setdefault(_norm(fact.text), fact)
    return list(facts.values())


def update_messages(new: list[Fact], stored: list[Stored]) -> list[dict[str, str]]:
    """A chat asking a model for mem0's decisions; stored facts go by their position ("0", "1",
    …), not their ids, which a model would garble."""
    memory = [{"id": str(number), "text": item.fact.text} for number, item in enumerate(stored)]
    content = (
        f"Stored: {json.dumps(memory, ensure_ascii=False)}\n"
        f"New: {json.dumps([fact.text for fact in new], ensure_ascii=False)}"
    )
    return [{"role": "system", "content": _UPDATE_PROMPT}, {"role": "user", "content": content}]


def parse_update(reply: str, stored: list[Stored]) -> list[Decision]:
    """The decisions of a model's reply to `update_messages`, with the stored ids back.

    Items naming no stored fact (other than ADD) are ignored, as is any but the first decision
    about one; an ADD of a stored text keeps that one; a malformed reply decides nothing.
    """
    data = _json_object(reply)
    items = data.get("memory") if data else None
    if not isinstance(items, list):
        return []
    by_position = {str(number): item for number, item in enumerate(stored)}
    by_text = {_norm(item.fact.text): item for item in stored}
    decisions: list[Decision] = []
    decided: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        event = str(item.get("event", "")).strip().upper()
        text = item.get("text")
        text = text.strip() if isinstance(text, str) else ""
        old = by_position.get(str(item.get("id", "")).strip())
        if event == "ADD" and text:
            old = by_text.get(_norm(text))
            if old is None:
                decisions.append(Add(_infer(text)))
                continue
            event = "NONE"
        if old is None or old.id in decided:
            continue
        if event == "UPDATE" and text and _norm(text) != _norm(old.fact.text):
            fact = _infer(text)
            decisions.append(Update(old.id, Fact(fact.text, fact.slot or old.fact.slot)))
        elif event == "DELETE":
            decisions.append(Delete(old.id))
        elif event in ("NONE", "UPDATE"):
            decisions.append(Keep(old.id))
        else:
            continue
        decided.add(old.id)
    return decisions


def _json_object(reply: str) -> dict[str, object] | None:
    """The JSON object in a model's reply: fenced or not, amid prose, after its thinking; None
    if there is none."""
    text = reply.rpartition("</think>")[2]
    if fenced := _FENCED.search(text):
        text = fenced.group(1)
    decoder = json.JSONDecoder()
    # an object opening with a key, among the first few: a reply is short, a hostile one is not
    for start in islice(_OBJECT_START.finditer(text), 8):
        try:
            value, _ = decoder.raw_decode(text, start.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _infer(text: str) -> Fact:
    """A model's fact in the form and slot the patterns give it, or as written when they give
    none ("Lives in Berlin" -> "The user lives in Berlin.", slot "home")."""
    found = [change for change in extract(_first_person(text)) if isinstance(change, Fact)]
    if len(found) == 1:
        return found[0]
    text = text.strip()
    return Fact(text[:1].upper() + text[1:] + ("" if text.endswith((".", "!")) else "."), None)


def _first_person(text: str) -> str:
    """ "The user lives in Berlin" / "Lives in Berlin" -> "I live in Berlin";
    "The user's name is Ada" / "Name is Ada" -> "My name is Ada"."""
    text = text.strip()
    if subject := _SUBJECT.match(text):
        if subject.group("own"):
            return "My " + text[subject.end() :]
        text = text[subject.end() :]
    elif text.split(" ", 1)[0].lower() in _OWNED:
        return "My " + text[:1].lower() + text[1:]
    verb, _, rest = text.partition(" ")
    lower = verb.lower()
    if lower in _FIRST_PERSON_VERBS:
        verb = _FIRST_PERSON_VERBS[lower]
    elif lower.endswith("ies"):
        verb = verb[:-3] + "y"
    elif lower.endswith("s") and not lower.endswith("ss"):
        verb = verb[:-1]
    return f"I {verb} {rest}"
