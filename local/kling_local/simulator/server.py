"""Running the simulator: in-process for tests (`SimulatorServer`) or from the CLI (`serve_forever`).

uvicorn serves the app from a background thread on a socket bound at construction, so port 0 works and
`.url` is known before `start()`; the ticker and the callback dispatcher are threads of their own.
`stop()` (or the context manager) ends them all; only an MP4 pre-render already running finishes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from kling_local.serving import BackgroundServer, stop_signals
from kling_local.simulator.app import build_app
from kling_local.simulator.auth import make_kling_jwt
from kling_local.simulator.callbacks import CallbackDispatcher
from kling_local.simulator.config import SimAccount, SimConfig, SimCredentials
from kling_local.simulator.context import SimContext
from kling_local.simulator.downloads import SimulatedDisconnectError
from kling_local.simulator.engine import Engine
from kling_local.simulator.links import LinkSigner
from kling_local.simulator.recorder import Recorder
from kling_local.simulator.ticker import Ticker


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
        accounts: Sequence[SimAccount] = (),
    ) -> None:
        self.host = host
        self.credentials = SimCredentials(accounts=tuple(accounts))
        self._http = BackgroundServer(host, port, name="simulator")
        self.port = self._http.port
        self.recorder = Recorder()
        self._dispatcher = CallbackDispatcher(self.recorder)
        self._signer = LinkSigner()
        self.engine = Engine(
            config or SimConfig(), self.recorder, self._dispatcher, self._signer, lambda: self.url
        )
        self._ticker = Ticker(self.engine)
        self._app = build_app(SimContext(self.engine, self.credentials, self._signer))
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        """Start serving; returns once the port accepts connections."""
        if self._started:
            return self
        self._dispatcher.start()
        self._ticker.start()
        try:
            self._http.start(self._app, timeout_keep_alive=30)
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and every background thread; pending (delayed) callbacks are dropped."""
        self._http.stop()
        self._ticker.stop()
        self._dispatcher.stop()
        self.engine.close()
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
        return self.engine.summaries(provider)

    def provider_env(self) -> dict[str, str]:
        """`KLING_API_BASE_URL`, keys etc. pointing the pipeline at this simulator."""
        return self.credentials.provider_env(self.url)

    def kling_jwt(self, account: str | None = None) -> str:
        """A valid Kling Authorization token for one account's keys (the first one by default)."""
        accounts = self.credentials.accounts_for("kling")
        chosen = next((a for a in accounts if a.name == account), accounts[0])
        return make_kling_jwt(chosen.key, chosen.secret or "")


def serve_forever(host: str = "127.0.0.1", port: int = 9100) -> None:
    """Run until Ctrl-C or SIGTERM, printing the URL and the credentials to use (the CLI's `simulate`)."""
    server = SimulatorServer(host=host, port=port).start()
    with stop_signals() as stopping:
        print(f"Kling provider simulator listening on {server.url}  (control: {server.url}/_sim/config)")
        for name, value in server.provider_env().items():
            print(f"  {name}={value}")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            server.stop()
            print("simulator stopped")
