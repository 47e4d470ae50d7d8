"""The task and reply messages, and errors across the wire, without a broker."""

from __future__ import annotations

import orjson
import pytest

from app.broker.envelope import Reply, Task, error_from_wire, error_to_wire
from app.errors import (
    AnswerTooLong,
    GatewayError,
    InvalidRequest,
    RateLimited,
    TaskFailed,
    UpstreamRejected,
)


def test_a_task_round_trips() -> None:
    task = Task("task-1", "plan", {"q": "ü", "n": [1, 2.5]}, 1234.5, "gw.reply.a", attempt=2)
    assert Task.decode(task.encode()) == task


GOOD = {"id": "a", "kind": "k", "payload": {}, "deadline": 1, "reply_to": "r", "attempt": 1}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{nope", "not JSON"),
        (b"[1]", "not a JSON object"),
        (orjson.dumps(GOOD | {"payload": []}), "'payload'"),
        (orjson.dumps(GOOD | {"deadline": True}), "'deadline'"),
        (orjson.dumps({k: v for k, v in GOOD.items() if k != "attempt"}), "'attempt'"),
    ],
)
def test_a_body_that_is_no_task_says_why(body: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Task.decode(body)


def across(error: BaseException) -> GatewayError:
    reply = Reply.decode(Reply.failed("t", error).encode())
    with pytest.raises(GatewayError) as caught:
        reply.outcome()
    return caught.value


def test_a_gateway_error_keeps_its_class_status_code_and_attributes() -> None:
    sent = UpstreamRejected(
        "too long", error_type="invalid_request_error", code="context_length_exceeded",
        param="messages",
    )  # fmt: skip
    got = across(sent)
    assert type(got) is UpstreamRejected
    assert got.body() == sent.body()
    assert got.status == 400

    got = across(AnswerTooLong("ollama", 30))
    assert type(got) is AnswerTooLong
    assert (got.status, got.code, got.message) == (504, "upstream_timeout", str(got))
    assert got.provider == "ollama"

    got = across(RateLimited("slow down", retry_after=3))
    assert got.headers() == {"Retry-After": "3"}


def test_an_error_class_defined_elsewhere_keeps_its_status_and_code() -> None:
    class PlanRejected(InvalidRequest):
        status = 422
        code = "plan_rejected"

    got = across(PlanRejected("no plan", param="plan"))
    assert isinstance(got, InvalidRequest)
    assert (got.status, got.code, got.param) == (422, "plan_rejected", "plan")
    assert got.body()["error"] == {
        "message": "no plan",
        "type": "invalid_request_error",
        "param": "plan",
        "code": "plan_rejected",
    }


def test_any_other_exception_is_a_task_failed_with_its_message() -> None:
    got = across(KeyError("city"))
    assert type(got) is TaskFailed
    assert (got.status, got.message) == (500, "KeyError: 'city'")


def test_a_malformed_error_is_a_task_failed() -> None:
    wire = error_to_wire(InvalidRequest("x"))
    del wire["status"]
    got = error_from_wire(wire)
    assert type(got) is TaskFailed
    assert "malformed" in got.message
