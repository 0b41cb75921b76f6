"""What the simulator saw and did, kept for tests and benchmarks to assert on.

Tests prove pipeline behaviour from the provider's side: "created exactly once", "queried by external id",
"never more than N tasks in flight", "the callback was answered 200". So every request (minus its
credentials), every callback attempt and the in-flight high-water mark per provider are recorded, and
served by `GET /_sim/requests`, `/_sim/callbacks`, `/_sim/stats` as well as in-process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kling_local.simulator.config import PROVIDERS

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie"})


def provider_of(path: str) -> str:
    """Which provider (or 'download' / 'control') a request path belongs to."""
    if path.startswith("/_sim"):
        return "control"
    if path.startswith("/files/"):
        return "download"
    if path.startswith("/api/"):
        return "kling3api"
    if path == "/v1/videos/generations" or path.startswith("/v1/tasks/"):
        return "evolink"
    return "kling"


class Recorder:
    """Thread-safe append-only logs plus per-provider in-flight gauges."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        self._in_flight: dict[str, int] = dict.fromkeys(PROVIDERS, 0)
        self._max_in_flight: dict[str, int] = dict.fromkeys(PROVIDERS, 0)
        self._created: dict[str, int] = dict.fromkeys(PROVIDERS, 0)
        # Per account, keyed "provider/account": in_flight, max_in_flight, tasks_created, throttled.
        self._accounts: dict[str, dict[str, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._callbacks.clear()
            self._accounts.clear()
            for provider in PROVIDERS:
                self._in_flight[provider] = self._max_in_flight[provider] = self._created[provider] = 0

    def reset_stats(self) -> None:
        """Restart the high-water marks from the current gauges and the counters from zero (logs kept)."""
        with self._lock:
            for provider in PROVIDERS:
                self._max_in_flight[provider] = self._in_flight[provider]
                self._created[provider] = 0
            for gauges in self._accounts.values():
                gauges.update(max_in_flight=gauges["in_flight"], tasks_created=0, throttled=0)

    def _account(self, provider: str, account: str) -> dict[str, int]:
        key = f"{provider}/{account}"
        return self._accounts.setdefault(
            key, {"in_flight": 0, "max_in_flight": 0, "tasks_created": 0, "throttled": 0}
        )

    def record_request(
        self, method: str, path: str, query: str, headers: dict[str, str], body: Any
    ) -> dict[str, Any]:
        """Append a request (credentials removed); the returned dict gets `status` once answered."""
        entry: dict[str, Any] = {
            "provider": provider_of(path),
            "method": method,
            "path": path,
            "query": query,
            "headers": {k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS},
            "json": body,
            "time": time.time(),
            "status": None,
        }
        with self._lock:
            self._requests.append(entry)
        return entry

    def set_status(self, entry: dict[str, Any], status: int) -> None:
        with self._lock:
            entry["status"] = status

    def record_callback(
        self,
        *,
        task_id: str,
        url: str,
        body: dict[str, Any],
        status: int | None,
        error: str | None,
        attempt: int,
    ) -> None:
        with self._lock:
            self._callbacks.append(
                {
                    "task_id": task_id,
                    "url": url,
                    "body": body,
                    "status": status,
                    "error": error,
                    "attempt": attempt,
                    "time": time.time(),
                }
            )

    def task_created(self, provider: str, account: str) -> None:
        with self._lock:
            self._created[provider] += 1
            self._account(provider, account)["tasks_created"] += 1

    def throttled(self, provider: str, account: str) -> None:
        """A create refused for the account's parallel-task limit (Kling 1303, the gateways' 429)."""
        with self._lock:
            self._account(provider, account)["throttled"] += 1

    def set_account_in_flight(self, provider: str, account: str, count: int) -> None:
        with self._lock:
            gauges = self._account(provider, account)
            gauges["in_flight"] = count
            gauges["max_in_flight"] = max(gauges["max_in_flight"], count)

    def set_in_flight(self, provider: str, count: int) -> None:
        """Update the gauge and its high-water mark (called whenever a task enters or leaves flight)."""
        with self._lock:
            self._in_flight[provider] = count
            self._max_in_flight[provider] = max(self._max_in_flight[provider], count)

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._requests if provider is None or r["provider"] == provider]

    def callbacks(self, task_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._callbacks if task_id is None or c["task_id"] == task_id]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "in_flight": dict(self._in_flight),
                "max_in_flight": dict(self._max_in_flight),
                "tasks_created": dict(self._created),
                "accounts": {key: dict(gauges) for key, gauges in sorted(self._accounts.items())},
                "requests": len(self._requests),
                "callbacks_sent": len(self._callbacks),
            }
