"""Running the simulator: in-process for tests (`SimulatorServer`) or from the CLI (`serve_forever`).

uvicorn serves the app from a background thread on a socket bound before start, so port 0 works and
`.url` is known as soon as `start()` returns; the ticker and the callback dispatcher are threads of
their own. Everything stops with `stop()` (or the context manager), leaving no thread behind.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from types import FrameType, TracebackType
from typing import Any

import uvicorn

from kling_local.simulator.app import build_app
from kling_local.simulator.auth import make_kling_jwt
from kling_local.simulator.callbacks import CallbackDispatcher
from kling_local.simulator.config import SimConfig, SimCredentials
from kling_local.simulator.context import SimContext
from kling_local.simulator.downloads import SimulatedDisconnectError
from kling_local.simulator.engine import Engine
from kling_local.simulator.links import LinkSigner
from kling_local.simulator.recorder import Recorder
from kling_local.simulator.ticker import Ticker

START_TIMEOUT_S = 10.0


class _HideSimulatedCuts(logging.Filter):
    """uvicorn logs a traceback for every app exception; an injected download cut is not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            if isinstance(error, SimulatedDisconnectError):
                return False
            if isinstance(error, BaseExceptionGroup) and any(
                isinstance(e, SimulatedDisconnectError) for e in error.exceptions
            ):
                return False
            error = error.__cause__ or error.__context__
        return True


_uvicorn_error_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _HideSimulatedCuts) for f in _uvicorn_error_logger.filters):
    _uvicorn_error_logger.addFilter(_HideSimulatedCuts())


def _client_host(host: str) -> str:
    """Where a client reaches a server bound to `host` (a wildcard bind is reached on loopback)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "127.0.0.1"
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return host


class SimulatorServer:
    """The three providers on one loopback port, with fault knobs and recordings.

    >>> with SimulatorServer(config=SimConfig(generation_time_s=0.5)) as server:
    ...     server.url, server.credentials.evolink_api_key
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: SimConfig | None = None,
        credentials: SimCredentials | None = None,
        *,
        prerender: bool = True,
    ) -> None:
        self.host = host
        self.credentials = credentials or SimCredentials()
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self.recorder = Recorder()
        self._dispatcher = CallbackDispatcher(self.recorder)
        self._signer = LinkSigner()
        self.engine = Engine(
            config or SimConfig(),
            self.recorder,
            self._dispatcher,
            self._signer,
            lambda: self.url,
            prerender=prerender,
        )
        self._ticker = Ticker(self.engine)
        app = build_app(SimContext(self.engine, self.credentials, self._signer))
        uvicorn_config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(uvicorn_config)
        self._thread = threading.Thread(target=self._serve, name="sim-http", daemon=True)
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------------

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self) -> SimulatorServer:
        """Start serving; returns once the port accepts connections."""
        if self._started:
            return self
        self._socket.listen(2048)
        self._dispatcher.start()
        self._ticker.start()
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and every background thread; pending (delayed) callbacks are dropped."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._ticker.stop()
        self._dispatcher.stop()
        self.engine.close()
        self._socket.close()
        self._started = False

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- access --------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for all three providers, downloads and /_sim (wildcard binds map to 127.0.0.1)."""
        host = _client_host(self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def config(self) -> SimConfig:
        """The live config: assign its fields (validated) or replace it whole."""
        return self.engine.config

    @config.setter
    def config(self, value: SimConfig) -> None:
        self.engine.config = value

    def configure(self, **changes: Any) -> SimConfig:
        """Change several knobs at once (validated together), e.g. `configure(failure_rate=1.0)`."""
        return self.engine.update_config(changes)

    def reset(self) -> None:
        """Clear tasks, recordings and pending callbacks; restore the config given at construction."""
        self.engine.reset()

    def stats(self) -> dict[str, Any]:
        """In-flight gauges and high-water marks per provider, tasks created, requests and callbacks."""
        return self.recorder.stats()

    def reset_stats(self) -> None:
        """Start a measurement: max_in_flight restarts from the current in-flight count."""
        self.recorder.reset_stats()

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        return self.recorder.requests(provider)

    def callbacks(self, task_id: str | None = None) -> list[dict[str, Any]]:
        return self.recorder.callbacks(task_id)

    def tasks(self, provider: str | None = None) -> list[dict[str, Any]]:
        return [t.summary() for t in self.engine.all_tasks() if provider is None or t.provider == provider]

    def provider_env(self) -> dict[str, str]:
        """`KLING_API_BASE_URL`, keys etc. pointing the pipeline at this simulator."""
        return self.credentials.provider_env(self.url)

    def kling_jwt(self) -> str:
        """A valid Kling Authorization token for this simulator's keys."""
        return make_kling_jwt(self.credentials.kling_access_key, self.credentials.kling_secret_key)


def serve_forever(host: str = "127.0.0.1", port: int = 9100, config: SimConfig | None = None) -> None:
    """Run until Ctrl-C or SIGTERM, printing the URL and the credentials to use (the CLI's `simulate`)."""
    server = SimulatorServer(host=host, port=port, config=config).start()
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"Kling provider simulator listening on {server.url}  (control: {server.url}/_sim/config)")
    for name, value in server.provider_env().items():
        print(f"  {name}={value}")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("simulator stopped")
