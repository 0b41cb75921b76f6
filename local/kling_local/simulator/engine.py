"""The simulator's core: task lifecycle, fault decisions and callback scheduling, for all providers.

One lock guards the task store and every fault roll, so "check the concurrency limit, then create" and
"external id unused, then create" are atomic even under a burst of parallel creates — a limit the
simulator enforces loosely would hide exactly the bugs it exists to find. Provider modules only validate
bodies and render wire formats; they register a `CallbackPolicy` saying which state changes they call
back on and how often they retry.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from kling_local.mp4gen import make_mp4
from kling_local.simulator.callbacks import CallbackDispatcher
from kling_local.simulator.config import SimConfig
from kling_local.simulator.links import LinkClaims, LinkSigner
from kling_local.simulator.media import OutputSpec
from kling_local.simulator.recorder import Recorder
from kling_local.simulator.tags import Tag
from kling_local.simulator.tasks import SimTask, TaskState, TaskStore

PROCESSING_SHARE = 0.2  # a task turns 'processing' after this share of its generation time
FAIL_MESSAGE = "Simulated generation failure"
TAG_FAIL_MESSAGE = "Simulated generation failure ([sim:fail])"


@dataclass(frozen=True)
class CallbackPolicy:
    """How a provider calls back: the body for a task, the states that trigger it, retries per body."""

    render: Callable[[SimTask], dict[str, Any]]
    states: frozenset[TaskState]
    retries: int = 0


class ConcurrencyLimitError(Exception):
    """The provider account already has `concurrency_limit` tasks in flight."""


class DuplicateExternalIdError(Exception):
    """external_task_id was already used in this account."""


@dataclass(frozen=True)
class NewTask:
    """What a provider route asks the engine to create (validated, in neutral terms)."""

    provider: str
    kind: Literal["video", "element"]
    route: str
    request: dict[str, Any]
    spec: OutputSpec | None
    tags: frozenset[Tag]
    task_id: str
    account: str = "default"
    account_limit: int | None = None  # the account's own parallel-task limit (SimAccount.concurrency)
    external_task_id: str | None = None
    callback_url: str | None = None
    credits: Decimal = Decimal(0)
    cost_usd: Decimal | None = None


class Engine:
    """Owns tasks, the fault RNG and the live config; driven by a ticker thread and by API calls."""

    def __init__(
        self,
        config: SimConfig,
        recorder: Recorder,
        dispatcher: CallbackDispatcher,
        signer: LinkSigner,
        base_url: Callable[[], str],
    ) -> None:
        self._lock = threading.RLock()
        self._initial_config = config.model_copy(deep=True)
        self._config = config
        self.recorder = recorder
        self.store = TaskStore()
        self._dispatcher = dispatcher
        self._signer = signer
        self._base_url = base_url
        self._policies: dict[str, CallbackPolicy] = {}
        self._rng = random.Random()
        self._applied_seed: int | Literal["unset"] | None = "unset"
        self._element_ids: set[str] = set()
        # Render a task's MP4 while it "generates", so its first download does not wait for ffmpeg.
        self._prerender = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sim-mp4")

    # -- configuration -------------------------------------------------------------------------------

    @property
    def config(self) -> SimConfig:
        return self._config

    @config.setter
    def config(self, value: SimConfig) -> None:
        with self._lock:
            self._config = value

    def update_config(self, changes: dict[str, Any]) -> SimConfig:
        """Merge `changes` into the live config (validated as a whole; unknown knobs are rejected)."""
        with self._lock:
            merged = self._config.model_dump() | changes
            self._config = SimConfig.model_validate(merged)
            return self._config

    def register(self, provider: str, policy: CallbackPolicy) -> None:
        self._policies[provider] = policy

    def reset(self) -> None:
        """Forget every task, record and pending callback; restore the config the server started with."""
        with self._lock:
            self.store.clear()
            self._element_ids.clear()
            self._dispatcher.clear()
            self.recorder.reset()
            self._config = self._initial_config.model_copy(deep=True)
            self._applied_seed = "unset"

    def close(self) -> None:
        self._prerender.shutdown(wait=False, cancel_futures=True)

    # -- fault decisions -----------------------------------------------------------------------------

    def _roll(self, probability: float) -> bool:
        """One draw of the seeded RNG (re-seeded whenever the `seed` knob changes). Caller holds the lock."""
        if self._applied_seed != self._config.seed:
            seed = self._config.seed
            self._rng.seed(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
            self._applied_seed = seed
        return probability > 0 and self._rng.random() < probability

    def http_fault(self, provider: str) -> Literal["5xx", "429"] | None:
        """A random 5xx or 429 for a create or query, per `error_5xx_rate` / `error_429_rate`."""
        with self._lock:
            if self._roll(self._config.rate("error_5xx_rate", provider)):
                return "5xx"
            if self._roll(self._config.rate("error_429_rate", provider)):
                return "429"
            return None

    def take_lost_response(self) -> bool:
        """True (and one fewer left) while `create_lost_response_count` > 0."""
        with self._lock:
            if self._config.create_lost_response_count <= 0:
                return False
            self._config.create_lost_response_count -= 1
            return True

    def take_download_cut(self) -> int | None:
        """Bytes after which this download's connection is cut, or None to serve it whole."""
        with self._lock:
            cut = self._config.download_fail_after_bytes
            remaining = self._config.download_fail_count
            if cut is None or remaining == 0:
                return None
            if remaining is not None:
                self._config.download_fail_count = remaining - 1
            return cut

    # -- tasks ---------------------------------------------------------------------------------------

    def create(self, new: NewTask) -> SimTask:
        """Register a task atomically with the concurrency and external-id checks.

        Raises ConcurrencyLimitError or DuplicateExternalIdError; the route turns them into wire errors.
        """
        with self._lock:
            config = self._config
            limit = config.limit_for(new.provider, new.account)
            if limit is None:
                limit = new.account_limit
            if limit is not None and self.store.in_flight(new.provider, new.account) >= limit:
                self.recorder.throttled(new.provider, new.account)
                raise ConcurrencyLimitError(new.provider)
            if new.external_task_id and self.store.external_exists(
                new.provider, new.account, new.kind, new.external_task_id
            ):
                raise DuplicateExternalIdError(new.external_task_id)
            started = time.monotonic()
            generation = config.generation_time_s
            fail_message = None
            if Tag.FAIL in new.tags:
                fail_message = TAG_FAIL_MESSAGE
            elif self._roll(config.rate("failure_rate", new.provider)):
                fail_message = FAIL_MESSAGE
            task = SimTask(
                provider=new.provider,
                task_id=new.task_id,
                kind=new.kind,
                route=new.route,
                request=new.request,
                spec=new.spec,
                processing_at=started + generation * PROCESSING_SHARE,
                finish_at=None if Tag.NEVER in new.tags else started + generation,
                fail_message=fail_message,
                tags=new.tags,
                account=new.account,
                external_task_id=new.external_task_id,
                callback_url=new.callback_url,
                credits=new.credits,
                cost_usd=new.cost_usd,
                started=started,
            )
            self.store.add(task)
            self.recorder.task_created(new.provider, new.account)
            self._gauge(task)
        if new.spec is not None and fail_message is None:
            spec = new.spec
            self._prerender.submit(make_mp4, spec.width, spec.height, spec.duration_s, sound=spec.sound)
        return task

    def find(self, provider: str, account: str, kind: str, task_or_external_id: str) -> SimTask | None:
        """The account's task, brought up to date first so an answer never lags the clock."""
        with self._lock:
            task = self.store.find(provider, account, kind, task_or_external_id)
            if task is not None:
                self._advance(task, time.monotonic())
            return task

    def list_tasks(self, provider: str, account: str, kind: str, route: str | None = None) -> list[SimTask]:
        """An account's tasks of one kind (and route), newest first."""
        with self._lock:
            now = time.monotonic()
            tasks = [
                t
                for t in self.store.all()
                if (t.provider, t.account, t.kind) == (provider, account, kind)
                and (route is None or t.route == route)
            ]
            for task in tasks:
                self._advance(task, now)
            return sorted(tasks, key=lambda t: t.created_at, reverse=True)

    def summaries(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Every task (or one provider's) in the neutral view of `GET /_sim/tasks`."""
        with self._lock:
            return [t.summary() for t in self.store.all() if provider is None or t.provider == provider]

    def cancel(self, task: SimTask, code: str, message: str) -> bool:
        """End a task `failed` with `code`; False when it had already ended."""
        with self._lock:
            self._advance(task, time.monotonic())
            if task.state.terminal:
                return False
            self._finish(task, TaskState.FAILED, code, message)
            return True

    def delete_element(self, task: SimTask) -> None:
        with self._lock:
            task.deleted = True
            task.updated_at = time.time()

    def tick(self) -> None:
        """Move every active task along its timeline (called every few ms by the ticker thread)."""
        with self._lock:
            now = time.monotonic()
            for task in self.store.active():
                self._advance(task, now)

    # -- lifecycle internals (caller holds the lock) -------------------------------------------------

    def _advance(self, task: SimTask, now: float) -> None:
        if task.state is TaskState.SUBMITTED and now >= task.processing_at:
            task.state = TaskState.PROCESSING
            task.updated_at = time.time()
            self._on_state(task)
        if task.state is TaskState.PROCESSING and task.finish_at is not None and now >= task.finish_at:
            if task.fail_message is not None:
                self._finish(task, TaskState.FAILED, "generation_failed", task.fail_message)
            else:
                self._finish(task, TaskState.SUCCEEDED, None, None)

    def _finish(self, task: SimTask, state: TaskState, code: str | None, message: str | None) -> None:
        task.state = state
        task.updated_at = time.time()
        task.error_code, task.error_message = code, message
        if state is TaskState.SUCCEEDED:
            if task.kind == "element":
                task.element_id = self._new_element_id()
            elif task.spec is not None:
                task.outputs = [self._mint_link(task)]
        self._gauge(task)
        self._on_state(task)

    def _gauge(self, task: SimTask) -> None:
        """Record the in-flight counts of the task's provider and account (a task entered or left)."""
        self.recorder.set_in_flight(task.provider, self.store.in_flight(task.provider))
        self.recorder.set_account_in_flight(
            task.provider, task.account, self.store.in_flight(task.provider, task.account)
        )

    def _new_element_id(self) -> str:
        while True:
            element_id = str(secrets.randbelow(900_000_000) + 100_000_000)
            if element_id not in self._element_ids:
                self._element_ids.add(element_id)
                return element_id

    def _mint_link(self, task: SimTask) -> str:
        assert task.spec is not None
        claims = LinkClaims(
            task_id=task.task_id,
            spec=task.spec,
            pad_to=self._config.output_pad_to_bytes,
            expires_at=time.time() + self._config.link_ttl_s,
        )
        return f"{self._base_url()}/files/{self._signer.token(claims)}/video.mp4"

    def _on_state(self, task: SimTask) -> None:
        """Schedule the callback(s) a state change causes, with the callback fault knobs applied."""
        policy = self._policies.get(task.provider)
        if policy is None:
            return
        config = self._config
        body = policy.render(task)
        if task.state is TaskState.PROCESSING:
            task.processing_snapshot = body
        if not task.callback_url or Tag.DROP_CALLBACK in task.tags:
            return
        bodies: list[dict[str, Any]] = []
        if task.state in policy.states:
            if task.state.terminal:
                bodies.append(body)
                if config.callback_out_of_order and task.processing_snapshot is not None:
                    bodies.append(task.processing_snapshot)  # stale, after the final one
            elif not config.callback_out_of_order:  # out-of-order: held back, replayed after the final
                bodies.append(body)
        if not bodies:
            return
        if self._roll(config.rate("callback_drop_rate", task.provider)):
            self.recorder.record_callback(
                task_id=task.task_id,
                url=task.callback_url,
                body=body,
                status=None,
                error="dropped",
                attempt=0,
            )
            return
        if self._roll(config.rate("callback_duplicate_rate", task.provider)):
            bodies.insert(1, body)
        self._dispatcher.submit(
            task.task_id,
            task.callback_url,
            bodies,
            delay_s=config.callback_delay_s,
            retries=policy.retries,
            backoff_s=config.callback_retry_backoff_s,
        )
