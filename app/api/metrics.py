"""GET /metrics: the Prometheus exposition, open without a key as health is."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import HealthDep, ServicesDep
from app.api.openapi import errors
from app.errors import NotFound
from app.ops.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"},
        **errors(404),
    },
)
async def metrics(gateway: ServicesDep, checker: HealthDep) -> Response:
    """Requests, model turns, tokens, providers, tools, caches, retrieval and dependencies."""
    if gateway.metrics is None:
        raise NotFound("metrics are off on this gateway (METRICS_ENABLED=false)")
    report = await checker.report()
    return Response(gateway.metrics.render(report), media_type=CONTENT_TYPE)
