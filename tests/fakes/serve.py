"""Run an ASGI app on a real loopback port in a background thread (as httpx's own tests do)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


@contextmanager
def serve(app: Any, port: int | None = None, uds: Path | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (or on the unix socket `uds`) and yield its base URL
    (`http://127.0.0.1:PORT`; `http://localhost` on a socket)."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        uds=None if uds is None else str(uds),
        log_level="warning",
        lifespan="on",
        loop="asyncio",
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # the first app of a process loads the embedder
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on {uds or port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}" if uds is None else "http://localhost"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
