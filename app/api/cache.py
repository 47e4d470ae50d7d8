"""The cache endpoints: /cache/health, /cache/stats and /cache/invalidate/*."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
