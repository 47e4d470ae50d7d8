"""The memory check's script: one user telling the gateway about themself over six sessions.

50 facts are told (several to a message at times), then 10 of them change in later sessions (a
move, a new employer and job, a year older, a new favourite…) and 5 are taken back ("forget
that…", "I no longer…", "…passed away"). A few messages state nothing (questions, a
hypothetical, "I'm tired") and must teach nothing. `PROBES` asks, for each of the 45 facts
still true at the end, a question where it matters, with a piece of that fact's current text;
`GONE` holds a piece of each superseded or forgotten fact, which must never come back.

tests/knowledge/test_memory_script.py replays the script through `extract` + `decide`; the
recall benchmark asks `PROBES` through a real gateway.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Probe:
    question: str
    expect: str  # in the text of the current fact the question needs


SESSIONS: list[list[str]] = [
    [
        "Hi! My name is Ada. I live in Lisbon, and I'm from Porto originally.",
        "I work at Feedzai as a data engineer. I'm 34 years old and my birthday is on the 9th "
        "of March.",
        "My wife is called Inês and we have a dog named Bolt.",
        "I speak Portuguese, English and a little German.",
        "What's a good place for lunch near the office?",
    ],
    [
        "I love hiking in the mountains.",
        "I like jazz, but I hate coriander.",
        "My favourite book is Dune. My favourite food is bacalhau and my favourite colour is "
        "green.",
        "I prefer tea over coffee. I enjoy playing chess. I don't like horror movies.",
        "My favourite band is Radiohead. I prefer short answers without bullet points.",
        "If I lived in Paris I would go to the Louvre every week.",
    ],
    [
        "I'm allergic to peanuts. I'm also allergic to penicillin.",
        "I'm vegetarian. I'm learning Japanese.",
        "My sister is called Marta. My mother is called Helena and my dad is called Rui.",
        "I have two kids. We also have a cat named Miso.",
        "My favourite movie is Arrival. I drive a Volvo.",
        "I'm tired today, long week.",
    ],
    [
        "We moved to Berlin last month!",
        "My favourite season is autumn and my favourite city is Kyoto.",
        "I like running in the morning. I love mushroom risotto.",
        "I was born in Coimbra. My favourite composer is Chopin.",
        "I'm learning the guitar too.",
        "My favourite programming language is Rust. I hate early meetings.",
        "My son is called Tomás and my daughter is called Rita.",
        "I turned 35 last week.",
    ],
    [
        "I love the ocean. My favourite dessert is pastel de nata.",
        "Honestly, I hate jazz now.",
        "I prefer window seats over aisle seats. My favourite podcast is Hardcore History.",
        "I like board games. My favourite holiday destination is the Azores.",
        "My best friend is called Joana.",
        "I'm vegan now.",
        "Please forget that I'm allergic to penicillin, it was a misdiagnosis.",
    ],
    [
        "I now work at Zalando as a machine learning engineer.",
        "My favourite book is Piranesi now.",
        "These days I prefer coffee over tea.",
        "We had a baby girl! I have three kids now.",
        "My favourite programming language is Zig now.",
        "Sadly, our dog Bolt passed away.",
        "I'm not learning Japanese anymore.",
        "Forget my favourite podcast.",
        "I no longer drive a Volvo.",
        "Can you recommend a jazz album?",
    ],
]

PROBES: list[Probe] = [
    Probe("What's my name?", "Ada"),
    Probe("Where do I live these days?", "Berlin"),
    Probe("Where am I originally from?", "Porto"),
    Probe("Where do I work now?", "Zalando"),
    Probe("What do I do for a living?", "machine learning engineer"),
    Probe("How old am I?", "35 years old"),
    Probe("When is my birthday?", "9th of March"),
    Probe("What's my wife's name?", "Inês"),
    Probe("Which languages do I speak?", "Portuguese"),
    Probe("Any ideas for a weekend outdoors?", "hiking"),
    Probe("Should I put on some jazz?", "hates jazz"),
    Probe("Can you suggest a salsa recipe?", "coriander"),
    Probe("What's a good book for me to reread?", "Piranesi"),
    Probe("What should I cook for a Portuguese dinner party?", "bacalhau"),
    Probe("What colour should I paint the study?", "green"),
    Probe("Should I bring coffee or tea to the meeting?", "coffee over tea"),
    Probe("What game could I play tonight?", "chess"),
    Probe("Any film I should avoid on Friday?", "horror movies"),
    Probe("Which concert should I go to?", "Radiohead"),
    Probe("How should you format your answers for me?", "short answers"),
    Probe("I'm buying snacks, anything to avoid?", "peanuts"),
    Probe("What should I have for dinner?", "vegan"),
    Probe("What's my sister's name?", "Marta"),
    Probe("What's my mother called?", "Helena"),
    Probe("What's my dad's name?", "Rui"),
    Probe("How many kids do I have?", "three kids"),
    Probe("What's my cat called?", "Miso"),
    Probe("What's my favourite film?", "Arrival"),
    Probe("What's my favourite time of year?", "autumn"),
    Probe("Which city should I visit next?", "Kyoto"),
    Probe("What's a good morning routine for me?", "running in the morning"),
    Probe("What should I order at the Italian place?", "mushroom risotto"),
    Probe("Where was I born?", "Coimbra"),
    Probe("What music should I play while working?", "Chopin"),
    Probe("Which instrument am I learning?", "guitar"),
    Probe("Which language should I use for my side project?", "Zig"),
    Probe("When should we schedule the team sync?", "early meetings"),
    Probe("What's my son's name?", "Tomás"),
    Probe("What's my daughter called?", "Rita"),
    Probe("Where should I spend a free afternoon?", "ocean"),
    Probe("What dessert should I bake?", "pastel de nata"),
    Probe("Window or aisle for my flight?", "window seats"),
    Probe("What should we do on game night?", "board games"),
    Probe("Where should I go on holiday?", "Azores"),
    Probe("What's my best friend's name?", "Joana"),
]

GONE: list[str] = [
    # superseded
    "Lisbon",
    "Feedzai",
    "data engineer",
    "34 years old",
    "likes jazz",
    "Dune",
    "prefers tea over coffee",
    "vegetarian",
    "two kids",
    "Rust",
    # forgotten
    "penicillin",
    "Bolt",
    "Japanese",
    "Hardcore History",
    "Volvo",
]
