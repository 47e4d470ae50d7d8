"""GET /health (every dependency), /health/live and /health/ready; open without a key."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import HealthDep
from app.api.responses import JSON

router = APIRouter()


@router.get("/health", responses={503: {"description": "Down: the same report"}})
async def health(checker: HealthDep) -> Response:
    """Each dependency's status, details and latency (`redis`, `chromadb`, `embeddings`, each
    provider by name) beside the overall `status`: 503 when it is `down`."""
    report = await checker.report()
    return JSON(report, status_code=503 if report["status"] == "down" else 200)


@router.get("/health/live")
async def live() -> Response:
    """Whether the process answers at all."""
    return JSON({"status": "ok"})


@router.get(
    "/health/ready", responses={503: {"description": 'Not ready: `{"status": "not ready"}`'}}
)
async def ready(checker: HealthDep) -> Response:
    """Whether the gateway can answer: not while its status is `down`."""
    report = await checker.report()
    ok = report["status"] != "down"
    return JSON({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)
