"""Serve an ASGI app on 127.0.0.1 (a free port) with uvicorn in a background thread.

Sync ``httpx.Client`` cannot use ``ASGITransport``, so platform fakes run as real HTTP servers::

    with run_asgi(app) as base_url:
        httpx.get(f"{base_url}/health")

The app's lifespan runs (startup before the context is entered, shutdown on exit).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


@contextlib.contextmanager
def run_asgi(app: Any, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0,
             ) -> Iterator[str]:
    """Run ``app`` until the block exits; yields its base URL (``http://127.0.0.1:<port>``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"asgi-{bound_port}")
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("ASGI server failed to start (see log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"ASGI server did not start within {startup_timeout} s")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
