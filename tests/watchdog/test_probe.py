"""The dependencies read from /health, in the shape the gateway gives now and in the seed's."""

from __future__ import annotations

from app.watchdog.probe import Dependency, read_dependencies


def test_the_gateways_report() -> None:
    report = {
        "status": "degraded",
        "providers": {
            "openai": {"status": "up", "detail": "3 models", "circuit": "closed"},
            "ollama": {"status": "unreachable", "detail": "nothing at localhost:11434"},
            "llamacpp": {"status": "down", "detail": "circuit open"},
        },
        "redis": {"status": "down", "detail": "Connection refused", "latency_ms": 1.2},
        "embeddings": {"status": "healthy", "details": "local model all-MiniLM-L6-v2"},
        "chromadb": {"status": "unhealthy", "details": "no answer within 3 s"},
        "uptime_s": 12.5,
    }
    assert read_dependencies(report) == {
        "openai": Dependency("up", "3 models"),
        "ollama": Dependency("absent", "nothing at localhost:11434"),
        "llamacpp": Dependency("down", "circuit open"),
        "redis": Dependency("down", "Connection refused"),
        "embeddings": Dependency("up", "local model all-MiniLM-L6-v2"),
        "chromadb": Dependency("down", "no answer within 3 s"),
    }


def test_the_seeds_shape() -> None:
    report = {
        "status": "healthy",
        "redis": {"status": "healthy", "details": None},
        "ollama": {"status": "unhealthy", "details": "timeout"},
    }
    assert read_dependencies(report) == {
        "redis": Dependency("up", ""),
        "ollama": Dependency("down", "timeout"),
    }
