"""The task transport: request/reply over a broker (BROKER_URL: Redis Streams, NATS JetStream or
Kafka, all through FastStream), knowing nothing of what the tasks are.

    client.py          the gateway's side: TaskClient.request(kind, payload, deadline)
    worker.py          the worker's side: serve(settings, handlers)
    envelope.py        the task and reply messages, errors across the wire
    backend.py         what differs between brokers, as one interface; one module per broker:
    redis_streams.py, nats_jetstream.py, kafka.py; brokers.py picks one by BROKER_URL

Delivery is at least once: a task is acknowledged only after its reply is published, so a
worker that dies mid-task leaves it to be redelivered to another after the visibility timeout.
"""

from app.broker.client import TaskClient
from app.broker.worker import Handler, serve

__all__ = ["Handler", "TaskClient", "serve"]
