"""The backend of BROKER_URL's scheme, its library imported only when it is the one in use."""

from __future__ import annotations

from app.broker.backend import Backend
from app.config import PipelineSettings


def backend_for(settings: PipelineSettings) -> Backend:
    """The backend of BROKER_URL's scheme; ValueError when BROKER_URL is empty."""
    scheme = settings.broker_url.partition(":")[0]
    if scheme in ("redis", "rediss"):
        from app.broker.redis_streams import RedisStreams

        return RedisStreams(settings)
    if scheme in ("nats", "tls"):
        from app.broker.nats_jetstream import NatsJetStream

        return NatsJetStream(settings)
    if scheme == "kafka":
        from app.broker.kafka import Kafka

        return Kafka(settings)
    raise ValueError(f"BROKER_URL {settings.broker_url!r} names no broker")
