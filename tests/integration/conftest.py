"""Fixtures for driving the provider simulator over real HTTP: the server and a callback receiver.

One simulator serves the whole session (starting uvicorn per test would dominate the run time); each
test gets it reset to fast, fault-free defaults. The callback receiver is a plain `http.server` on
127.0.0.1, so what arrives there went through a real socket exactly as a provider's webhook would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kling_local.simulator import SimConfig, SimulatorServer

FAST_SIM = SimConfig(generation_time_s=0.3, callback_retry_backoff_s=0.05, seed=1234)


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[SimulatorServer]:
    with SimulatorServer(config=FAST_SIM) as server:
        yield server


@pytest.fixture
def simulator(simulator_server: SimulatorServer) -> Iterator[SimulatorServer]:
    """The session's simulator, cleared and back to FAST_SIM before and after the test."""
    simulator_server.reset()
    yield simulator_server
    simulator_server.reset()


class CallbackReceiver:
    """Records JSON POSTs; answers with the scripted statuses first, then 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []  # consumed one per request before falling back to 200
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.bodies.append(body)
                    receiver.paths.append(self.path)
                    receiver._lock.notify_all()
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """At least `count` bodies (raises AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.bodies) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} callbacks, got {len(self.bodies)}: {self.bodies}")
                self._lock.wait(remaining)
            return list(self.bodies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()
