"""GET /health (per provider), /health/live and /health/ready; open without a key."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import HealthDep
from app.api.responses import JSON

router = APIRouter()


@router.get("/health", responses={503: {"description": "Down: the same report"}})
async def health(checker: HealthDep) -> Response:
    report = await checker.report()
    return JSON(report, status_code=503 if report["status"] == "down" else 200)


@router.get("/health/live")
async def live() -> Response:
    return JSON({"status": "ok"})


@router.get(
    "/health/ready", responses={503: {"description": 'Not ready: `{"status": "not ready"}`'}}
)
async def ready(checker: HealthDep) -> Response:
    report = await checker.report()
    ok = report["status"] != "down"
    return JSON({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)
