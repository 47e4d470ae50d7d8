"""The stateful chat API: /chat, /v1/chat/stream, sessions, per-session metrics, vitals."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
