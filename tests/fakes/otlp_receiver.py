"""A fake OpenTelemetry collector: OTLP/HTTP `POST /v1/traces` with a protobuf body, as the SDK's
exporter sends it. Serve the app with `tests.fakes.serve.serve(app)` and point
OTEL_EXPORTER_OTLP_ENDPOINT at its URL; the state holds every span received, decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    spans: list[Span] = field(default_factory=list)
    resources: list[dict[str, str]] = field(default_factory=list)
    """Each export's resource, its string attributes (service.name, …)."""
    content_types: list[str] = field(default_factory=list)


def create_otlp_receiver() -> tuple[Starlette, Received]:
    received = Received()

    async def traces(request: Request) -> Response:
        received.content_types.append(request.headers.get("content-type", ""))
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        for resource_spans in export.resource_spans:
            attributes = resource_spans.resource.attributes
            received.resources.append({a.key: a.value.string_value for a in attributes})
            for scope_spans in resource_spans.scope_spans:
                received.spans.extend(scope_spans.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type="application/x-protobuf")

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])]), received
