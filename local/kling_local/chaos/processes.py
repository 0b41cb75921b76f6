"""Child processes of a chaos run: the AWS endpoint and (killable) local stacks.

Each child prints one JSON line when it is ready; the parent reads it and returns. Children are killed by
their own pid only (never by name), and every one is reaped on exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

READY_TIMEOUT_S = 60.0


class ChildProcess:
    """A Python child that reports readiness as its first JSON stdout line; stderr is kept (last lines).

    With `log_path`, everything the child writes (both streams: the handlers log to stdout) is appended
    there too, so a run that leaves a generation unsettled can be read back afterwards.
    """

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        name: str = "child",
        log_path: Path | None = None,
        ready_key: str | None = None,
    ) -> None:
        self._args = [sys.executable, *args]
        # The ready line's own key: a stack started again drains its queues at once, and its handlers'
        # JSON logs can come before the ready line (found by the chaos run: a log record taken for it).
        self._ready_key = ready_key
        self._env = {**os.environ, **(env or {})}
        self.name = name
        self._log = log_path.open("a", buffering=1) if log_path else None
        if log_path:
            self._env["PYTHONUNBUFFERED"] = "1"  # what a SIGKILLed child logged is kept, up to its end
        self.process: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}
        self.stderr_tail: deque[str] = deque(maxlen=200)

    def start(self) -> Self:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self._args,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True).start()
        found = threading.Event()

        def read_ready() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self._write_log(line)
                if line.startswith("{") and not found.is_set():
                    try:
                        ready = json.loads(line)
                    except ValueError:
                        continue
                    if self._ready_key is not None and self._ready_key not in ready:
                        continue
                    self.ready = ready
                    found.set()
            found.set()

        threading.Thread(target=read_ready, daemon=True).start()
        if not found.wait(READY_TIMEOUT_S) or not self.ready:
            self.kill()
            raise RuntimeError(f"{self.name} did not start:\n" + "".join(self.stderr_tail))
        return self

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr_tail.append(line)
            self._write_log(line)

    def _write_log(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, as when a machine or container dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self._reap()

    def terminate(self, timeout_s: float = 20.0) -> None:
        """SIGTERM and wait for a clean stop; SIGKILL when it takes longer."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self.process is not None:
            self.process.wait(30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.terminate()


class AwsEndpointProcess(ChildProcess):
    """`kling-pipeline aws` on a free port: the durable AWS state of a run."""

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        super().__init__(
            ["-m", "kling_local.cli", "aws", "--port", str(port)], name="aws endpoint", log_path=log_path
        )

    @property
    def url(self) -> str:
        return str(self.ready["aws_endpoint_url"])
