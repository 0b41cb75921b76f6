"""Callback delivery off the request path, with the providers' timeout and retry behaviour.

A provider never holds an API answer while it calls a webhook, so neither does the simulator: deliveries
are queued with a due time (for `callback_delay_s`) and posted by a small thread pool. Each job carries
an ordered list of bodies sent one after another on the same worker, which is how duplicates and the
"final first, then stale" out-of-order case keep their order.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from kling_local.simulator.recorder import Recorder

CALLBACK_TIMEOUT_S = 10.0  # both gateways document a 10 s callback timeout
WORKERS = 8


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    task_id: str = field(compare=False)
    url: str = field(compare=False)
    bodies: list[dict[str, Any]] = field(compare=False)
    retries: int = field(compare=False)
    backoff_s: float = field(compare=False)


class CallbackDispatcher:
    """Posts callback bodies to their URLs at their due time; records every attempt."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._wakeup = threading.Condition()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sim-callback")
        self._client = httpx.Client(
            timeout=CALLBACK_TIMEOUT_S, trust_env=False, headers={"user-agent": "kling-sim/1.0"}
        )
        self._thread = threading.Thread(target=self._run, name="sim-callback-timer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Drop deliveries not yet due, let running ones finish their current attempt."""
        self._stopping.set()
        with self._wakeup:
            self._heap.clear()
            self._wakeup.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def clear(self) -> None:
        """Forget deliveries not yet due (used by reset)."""
        with self._wakeup:
            self._heap.clear()

    def submit(
        self,
        task_id: str,
        url: str,
        bodies: list[dict[str, Any]],
        *,
        delay_s: float,
        retries: int,
        backoff_s: float,
    ) -> None:
        job = _Job(time.monotonic() + delay_s, next(self._seq), task_id, url, bodies, retries, backoff_s)
        with self._wakeup:
            heapq.heappush(self._heap, job)
            self._wakeup.notify()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._wakeup:
                while not self._stopping.is_set() and (
                    not self._heap or self._heap[0].due > time.monotonic()
                ):
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    self._wakeup.wait(timeout)
                if self._stopping.is_set():
                    return
                job = heapq.heappop(self._heap)
            self._pool.submit(self._deliver, job)

    def _deliver(self, job: _Job) -> None:
        for body in job.bodies:
            self._post(job, body)

    def _post(self, job: _Job, body: dict[str, Any]) -> None:
        """One body: the first attempt plus up to `retries` more on errors or non-2xx answers."""
        for attempt in range(1, job.retries + 2):
            status: int | None = None
            error: str | None = None
            try:
                status = self._client.post(job.url, json=body).status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._recorder.record_callback(
                task_id=job.task_id, url=job.url, body=body, status=status, error=error, attempt=attempt
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt <= job.retries and self._stopping.wait(job.backoff_s * 2 ** (attempt - 1)):
                return
