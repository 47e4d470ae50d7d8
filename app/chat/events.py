"""What a turn emits: one async stream of events from this closed set, whatever the entry point.
Each wire has one encoder that turns them into its bytes (`app/api/wire/`); adding a kind means
the producer here and one case per encoder.

Errors are not events: the stream raises a `GatewayError`, and each encoder says it in its own
way (an HTTP status before the first byte, an in-band error after it).

Events are values, never changed once made; they are not `frozen` dataclasses only because a
turn makes one per token, and a frozen dataclass takes three times as long to make.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from app.errors import GatewayError
from app.tools.registry import ToolOutcome


@dataclass(slots=True)
class Text:
    """A piece of an answer's text (`logprobs`: the upstream's for this piece)."""

    text: str
    choice: int = 0
    logprobs: dict[str, Any] | None = None


@dataclass(slots=True)
class Reasoning:
    """A piece of the model's reasoning, where the upstream sends it apart from the answer."""

    text: str
    choice: int = 0


@dataclass(slots=True)
class Refusal:
    text: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a call of one of the client's tools, for the client to run: a function's
    `arguments`, or a `custom` tool's free-form input in the same field."""

    index: int
    id: str | None
    name: str | None
    arguments: str
    choice: int = 0
    custom: bool = False

    @property
    def type(self) -> Literal["function", "custom"]:
        return "custom" if self.custom else "function"


@dataclass(slots=True)
class ToolStarted:
    """The gateway started one of its own tools."""

    call_id: str
    name: str
    arguments: dict[str, Any] | str


@dataclass(slots=True)
class ToolFinished:
    """One of the gateway's tools is done."""

    call_id: str
    outcome: ToolOutcome


@dataclass(slots=True)
class Waiting:
    """The gateway's tools are still running: a keep-alive, never stored."""

    names: tuple[str, ...]


@dataclass(slots=True)
class Sources:
    """Where the answer's facts came from: the tools' (`{"tool", "url", "title"?}` or
    `{"tool", "source"}`) and the passages of the user's documents placed in the context
    (`{"index", "type": "document", "document_id", "name", "title", "location", "page",
    "lines", "text", "score", "similarity", "path"}`), numbered as the model cites them."""

    items: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class Remembered:
    """What the user's message changed in their memory: `{"event": add | update | delete,
    "id", "text"}` each."""

    changes: tuple[dict[str, str], ...]


@dataclass(slots=True)
class AgentStep:
    """An agent (or a step of a pipeline) starts or ends its work: at the end, how long it took,
    the tokens it used, and what came of it when that is news (`detail`: "3 subtasks", "no plan:
    answering directly")."""

    name: str
    phase: Literal["start", "end"]
    seconds: float = 0.0
    tokens: int = 0
    detail: str = ""


@dataclass(slots=True)
class FollowUps:
    questions: tuple[str, ...]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        """Two answers' usage together (the rounds of a tool loop, the prompts of a list)."""
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.estimated or other.estimated,
        )

    def public(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


NO_USAGE = Usage(0, 0, 0)


@dataclass(slots=True)
class Timings:
    ttft_ms: float
    total_ms: float


@dataclass(slots=True)
class Finish:
    reason: str
    choice: int = 0


Event = (
    Text
    | Reasoning
    | Refusal
    | ToolCallDelta
    | ToolStarted
    | ToolFinished
    | Waiting
    | Sources
    | Remembered
    | AgentStep
    | FollowUps
    | Usage
    | Timings
    | Finish
)

_KINDS: dict[str, type[Event]] = {cls.__name__: cls for cls in get_args(Event)}


def to_record(event: Event) -> dict[str, Any]:
    """`event` as plain data, for the response cache."""
    return {"kind": type(event).__name__, **asdict(event)}


def from_record(record: dict[str, Any]) -> Event:
    """The event `to_record` made; a `GatewayError` for anything else."""
    data = dict(record)
    cls = _KINDS.get(data.pop("kind", None))
    if cls is None:
        raise GatewayError(f"not a stored event: {record!r:.80}")
    if isinstance(data.get("outcome"), dict):
        data["outcome"] = ToolOutcome(**data["outcome"])
    for name in ("names", "items", "questions", "changes"):
        if isinstance(data.get(name), list):
            data[name] = tuple(data[name])
    try:
        return cls(**data)
    except TypeError as exc:
        raise GatewayError(f"not a stored event: {exc}") from None
