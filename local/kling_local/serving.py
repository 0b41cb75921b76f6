"""What the front door and the provider simulator share: uvicorn on a thread, and the CLI's wait for a signal.

The socket is bound when the server object is built, so port 0 works and the URL is known before anything
is wired to it; `start()` returns only once uvicorn accepts connections.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT_S = 10.0


class BackgroundServer:
    """uvicorn serving one ASGI app from a daemon thread on a pre-bound socket."""

    def __init__(self, host: str, port: int, *, name: str) -> None:
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()  # e.g. the port is taken: no half-made server keeps the socket
            raise
        self.port: int = self._socket.getsockname()[1]
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, app: ASGIApp, **options: Any) -> None:
        """Serve `app` with extra uvicorn `options`; RuntimeError when not up within START_TIMEOUT_S."""
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off", **options
        )
        self._server = uvicorn.Server(config)
        self._socket.listen(2048)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=self._name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:  # uvicorn offers no event to wait on
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self._name} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Let uvicorn finish its open requests, then release the port; safe before `start` and twice."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._socket.close()


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the event instead of ending the process, so the caller can stop cleanly."""
    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
