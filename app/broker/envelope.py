"""The transport's two messages as bytes: a task (what to run, for whom, by when) and its reply
(the handler's result, or its error with the status and code it would have in the gateway)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app import errors
from app.errors import GatewayError, TaskFailed

REPLY_TO = "x-reply-to"
"""The header naming a task's reply address, so that even an undecodable task can be answered."""
DEAD_REASON = "x-dead-reason"
DELIVERIES = "x-deliveries"
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    """The correlation id, fresh for each request."""
    kind: str
    payload: dict[str, Any]
    deadline: float
    """`time.time()` by which the reply must have come; after it the task is not run."""
    reply_to: str
    attempt: int = 1
    """The delivery it was published for: 1 from the requester; the worker adds the broker's
    own count of redeliveries."""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "kind": self.kind,
                "payload": self.payload,
                "deadline": self.deadline,
                "reply_to": self.reply_to,
                "attempt": self.attempt,
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> Task:
        """The task in `body`; ValueError saying what is wrong with it."""
        data = _object(body)
        return cls(
            id=_field(data, "id", str),
            kind=_field(data, "kind", str),
            payload=_field(data, "payload", dict),
            deadline=float(_field(data, "deadline", (int, float))),
            reply_to=_field(data, "reply_to", str),
            attempt=_field(data, "attempt", int),
        )


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def failed(cls, task_id: str, exc: BaseException) -> Reply:
        return cls(task_id, error=error_to_wire(exc))

    def encode(self) -> bytes:
        body: dict[str, Any] = {"id": self.id}
        if self.error is not None:
            body["error"] = self.error
        else:
            body["result"] = self.result
        return orjson.dumps(body)

    @classmethod
    def decode(cls, body: bytes) -> Reply:
        data = _object(body)
        task_id = _field(data, "id", str)
        if "error" in data:
            return cls(task_id, error=_field(data, "error", dict))
        return cls(task_id, result=_field(data, "result", dict))

    def outcome(self) -> dict[str, Any]:
        """The handler's result; its error raised as a GatewayError."""
        if self.error is not None:
            raise error_from_wire(self.error)
        assert self.result is not None
        return self.result


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """A GatewayError as its class (the nearest one app.errors defines), status, type, code,
    message and JSON-able attributes; any other exception as a TaskFailed with its message."""
    if not isinstance(exc, GatewayError):
        exc = TaskFailed(f"{type(exc).__name__}: {exc}")
    known = next(c for c in type(exc).__mro__ if getattr(errors, c.__name__, None) is c)
    extra = {
        name: value
        for name, value in vars(exc).items()
        if name not in ("message", "param", "retry_after") and isinstance(value, _SCALARS)
    }
    return {
        "class": known.__name__,
        "status": exc.status,
        "type": exc.type,
        "code": exc.code,
        "retryable": exc.retryable,
        "message": exc.message,
        "param": exc.param,
        "retry_after": exc.retry_after,
        "extra": extra,
    }


def error_from_wire(data: Mapping[str, Any]) -> GatewayError:
    """The error `error_to_wire` described: its class from app.errors, given the status, type
    and code it was sent with when they differ (a subclass defined elsewhere)."""
    try:
        found = getattr(errors, str(data["class"]), None)
        cls = found if isinstance(found, type) and issubclass(found, GatewayError) else TaskFailed
        sent = {
            "status": int(data["status"]),
            "type": str(data["type"]),
            "code": str(data["code"]),
            "retryable": bool(data["retryable"]),
        }
        message = str(data["message"])
        param = None if data["param"] is None else str(data["param"])
        retry_after = None if data["retry_after"] is None else float(data["retry_after"])
        extra = dict(data["extra"])
    except (KeyError, TypeError, ValueError) as exc:
        return TaskFailed(f"a worker's error reply is malformed: {exc!r}")
    if any(getattr(cls, name) != value for name, value in sent.items()):
        cls = type(cls.__name__, (cls,), sent)
    error = cls.__new__(cls)
    GatewayError.__init__(error, message, param=param, retry_after=retry_after)
    vars(error).update(extra)
    return error


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    return data


def _field(data: dict[str, Any], name: str, kind: type[Any] | tuple[type[Any], ...]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name!r} is missing or not {getattr(kind, '__name__', 'a number')}")
    return value
