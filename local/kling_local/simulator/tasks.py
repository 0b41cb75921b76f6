"""The simulator's provider-neutral task: one record per video or element task, whatever the provider.

Each provider module renders the same record in its own wire format, so lifecycle, faults and callbacks
are written once. Timing is decided at create (from the config of that moment) so that changing a knob
later never rewrites a task already in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from kling_local.simulator.media import OutputSpec
from kling_local.simulator.tags import Tag


class TaskState(StrEnum):
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


@dataclass
class SimTask:
    """A task at a simulated provider account."""

    provider: str
    task_id: str
    kind: Literal["video", "element"]
    route: str  # kling: omni-video | text2video | image2video | element; evolink: model; kling3api: type
    request: dict[str, Any]
    spec: OutputSpec | None  # None for element tasks
    processing_at: float  # monotonic time of submitted → processing
    finish_at: float | None  # monotonic time of the final state; None = never ([sim:never])
    fail_message: str | None  # set at create when the task is going to fail
    tags: frozenset[Tag] = frozenset()
    account: str = "default"  # tasks belong to the account that created them (others get 404)
    external_task_id: str | None = None
    callback_url: str | None = None
    credits: Decimal = Decimal(0)
    cost_usd: Decimal | None = None
    state: TaskState = TaskState.SUBMITTED
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    error_code: str | None = None
    error_message: str | None = None
    outputs: list[str] = field(default_factory=list)
    element_id: str | None = None
    deleted: bool = False
    processing_snapshot: dict[str, Any] | None = None  # wire body as of 'processing' (out-of-order replay)

    def progress(self) -> int:
        """0 submitted or failed, 100 succeeded; processing: 5 → 95 with the clock (50 if it never ends)."""
        if self.state is TaskState.SUCCEEDED:
            return 100
        if self.state is not TaskState.PROCESSING:
            return 0
        if self.finish_at is None:
            return 50
        if self.finish_at <= self.processing_at:
            return 95
        share = (time.monotonic() - self.processing_at) / (self.finish_at - self.processing_at)
        return max(5, min(95, int(5 + 90 * share)))

    def summary(self) -> dict[str, Any]:
        """The neutral view served by `GET /_sim/tasks`."""
        return {
            "provider": self.provider,
            "account": self.account,
            "task_id": self.task_id,
            "kind": self.kind,
            "route": self.route,
            "external_task_id": self.external_task_id,
            "callback_url": self.callback_url,
            "state": self.state.value,
            "progress": self.progress(),
            "tags": sorted(tag.value for tag in self.tags),
            "error": {"code": self.error_code, "message": self.error_message} if self.error_code else None,
            "outputs": list(self.outputs),
            "element_id": self.element_id,
            "spec": None
            if self.spec is None
            else {
                "width": self.spec.width,
                "height": self.spec.height,
                "duration_s": self.spec.duration_s,
                "sound": self.spec.sound,
            },
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted": self.deleted,
        }


class TaskStore:
    """Tasks by id, plus per-account external-id indexes. Not locked: the engine owns the lock."""

    def __init__(self) -> None:
        self._tasks: dict[str, SimTask] = {}
        self._external: dict[tuple[str, str, str, str], str] = {}

    def clear(self) -> None:
        self._tasks.clear()
        self._external.clear()

    def add(self, task: SimTask) -> None:
        self._tasks[task.task_id] = task
        if task.external_task_id:
            key = (task.provider, task.account, task.kind, task.external_task_id)
            self._external[key] = task.task_id

    def external_exists(self, provider: str, account: str, kind: str, external_task_id: str) -> bool:
        return (provider, account, kind, external_task_id) in self._external

    def get(self, provider: str, account: str, task_id: str) -> SimTask | None:
        task = self._tasks.get(task_id)
        return task if task is not None and (task.provider, task.account) == (provider, account) else None

    def find(self, provider: str, account: str, kind: str, task_or_external_id: str) -> SimTask | None:
        """By task id, else by the external id given at create (Kling: "choose either"), in one account."""
        task = self.get(provider, account, task_or_external_id)
        if task is None:
            task_id = self._external.get((provider, account, kind, task_or_external_id))
            task = self._tasks.get(task_id) if task_id else None
        return task if task is not None and task.kind == kind else None

    def all(self) -> list[SimTask]:
        return list(self._tasks.values())

    def active(self) -> list[SimTask]:
        return [task for task in self._tasks.values() if not task.state.terminal]

    def in_flight(self, provider: str, account: str | None = None) -> int:
        """Unfinished tasks of a provider (of one of its accounts when `account` is given)."""
        return sum(
            1
            for t in self._tasks.values()
            if t.provider == provider and (account is None or t.account == account) and not t.state.terminal
        )
