"""Traces of the gateway's turns, sent to an OTLP/HTTP collector (OTEL_EXPORTER_OTLP_ENDPOINT).

One span per turn, `chat {model}` or `text_completion {model}` (INTERNAL: the turn is work the
gateway does inside a request, and the HTTP request's own span would be the SERVER one), with
children: each request to a provider, `chat {model}` (CLIENT, one per retry and fallback, to the
first chunk), each of the gateway's own tool calls, `execute_tool {name}`, and the retrieval of
the user's passages and memories, `retrieval`. Names and attributes follow OpenTelemetry's GenAI
semantic conventions; the gateway's own attributes are `gateway.*`. No message text, tool
argument or result, key or user id is ever put on a span.

The turn's span is made current while the turn opens and while each of its events is pulled, so
that the router and the grounder, which report through `Observers`, find it as the parent
whichever task reads the turn. This is the only module that imports OpenTelemetry's SDK and
exporter; `services.py` imports it only when tracing is on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from app import __version__
from app.config import OpsSettings
from app.ops.metrics import TurnRecord
from app.providers.router import Attempt

log = logging.getLogger(__name__)
_T = TypeVar("_T")

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"
FALLBACK = "gateway.fallback"
CACHE = "gateway.cache"
PASSAGES = "gateway.retrieval.passages"
MEMORIES = "gateway.retrieval.memories"


def open_tracing(settings: OpsSettings, exporter: SpanExporter | None = None) -> Tracing:
    """Spans batched to OTEL_EXPORTER_OTLP_ENDPOINT's `/v1/traces` (OTLP/HTTP, protobuf; the
    exporter's own OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION apply), or each handed to
    `exporter` as it ends when one is given (tests give the SDK's in-memory one)."""
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.version": __version__}
    )
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    if exporter is None:
        url = settings.otel_exporter_otlp_endpoint + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        log.info("tracing: spans to %s as %s", url, settings.otel_service_name)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider)


class Tracing:
    """The gateway's tracer, on a provider of its own (never the process's global one, so that
    apps made side by side in one process keep their spans apart)."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("ai-gateway", __version__)

    def turn(self, operation: str, model: str) -> TurnSpan:
        """A turn's span, started; `model` is the one the client asked for ('' for the
        default)."""
        attributes: dict[str, AttributeValue] = {OPERATION: operation}
        if model:
            attributes[REQUEST_MODEL] = model
        name = f"{operation} {model}" if model else operation
        span = self._tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
        return TurnSpan(self._tracer, span)

    def attempted(self, attempt: Attempt) -> None:
        """A provider attempt, as a child of the current turn's span."""
        route = attempt.route
        attributes: dict[str, AttributeValue] = {
            OPERATION: attempt.operation,
            PROVIDER: route.provider.name,
            REQUEST_MODEL: route.model,
        }
        if attempt.fallback:
            attributes[FALLBACK] = True
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{attempt.operation} {route.model}",
            kind=SpanKind.CLIENT,
            start_time=end - _ns(attempt.seconds),
            attributes=attributes,
        )
        if attempt.error is not None:
            _failed(span, attempt.error.code)
        span.end(end_time=end)

    def retrieval(self, seconds: float, passages: int, memories: int) -> None:
        """A turn's retrieval (how many passages and memories it found), as a child of the
        current turn's span."""
        end = time.time_ns()
        span = self._tracer.start_span(
            "retrieval",
            kind=SpanKind.INTERNAL,
            start_time=end - _ns(seconds),
            attributes={OPERATION: "retrieval", PASSAGES: passages, MEMORIES: memories},
        )
        span.end(end_time=end)

    async def aclose(self) -> None:
        """Send what is left and stop (blocking on the collector, so off the event loop)."""
        await asyncio.to_thread(self._provider.shutdown)


class TurnSpan:
    """One turn's span, ended by `end` when the turn's events end."""

    __slots__ = ("_context", "_hit", "_span", "_tracer")

    def __init__(self, tracer: trace.Tracer, span: Span) -> None:
        self._tracer = tracer
        self._span = span
        self._context = trace.set_span_in_context(span)
        self._hit = False

    async def within(self, opening: Awaitable[_T]) -> _T:
        """`opening` awaited with the turn's span current."""
        token = context.attach(self._context)
        try:
            return await opening
        finally:
            context.detach(token)

    async def events(self, source: AsyncIterator[_T]) -> AsyncIterator[_T]:
        """`source`, each item pulled with the turn's span current, whichever task reads it:
        a tool loop's later steps are the turn's children too."""
        while True:
            token = context.attach(self._context)
            try:
                item = await anext(source)
            except StopAsyncIteration:
                return
            finally:
                context.detach(token)
            yield item

    def cached(self, status: str | None) -> None:
        """The response cache's part: `hit` (then no tokens were used), `miss` or `bypass`
        (None: not cacheable)."""
        if status is not None:
            self._span.set_attribute(CACHE, status)
            self._hit = status == "hit"

    def tool(self, call_id: str, name: str, ok: bool, seconds: float) -> None:
        """One of the gateway's tool calls, done."""
        end = time.time_ns()
        span = self._tracer.start_span(
            f"execute_tool {name}",
            context=self._context,
            kind=SpanKind.INTERNAL,
            start_time=end - _ns(seconds),
            attributes={
                OPERATION: "execute_tool",
                TOOL_NAME: name,
                TOOL_CALL_ID: call_id,
                TOOL_TYPE: "function",
            },
        )
        if not ok:
            _failed(span, "tool_error")
        span.end(end_time=end)

    def end(self, record: TurnRecord) -> None:
        """The turn as its events told it: the model that answered, usage, finish reasons,
        time to first chunk, or the error that ended it."""
        span = self._span
        if record.model:
            span.set_attribute(PROVIDER, record.model.partition("/")[0])
            span.set_attribute(RESPONSE_MODEL, record.model)
        if (record.input_tokens or record.output_tokens) and not self._hit:
            span.set_attribute(INPUT_TOKENS, record.input_tokens)
            span.set_attribute(OUTPUT_TOKENS, record.output_tokens)
        if record.finish_reasons:
            span.set_attribute(FINISH_REASONS, record.finish_reasons)
        if record.ttft is not None:
            span.set_attribute(TIME_TO_FIRST_CHUNK, record.ttft)
        if record.error:
            _failed(span, record.error)
        span.end()


def _failed(span: Span, error_type: str) -> None:
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR))


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)
