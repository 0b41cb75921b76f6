"""Admission control and the fair queue: never more tasks on an account than its `concurrency`, and
waiting generations started as slots free up, first come first served within a tenant, round-robin
across tenants.

- A create takes a slot (store/slots.py) on the account with the most free slots of the cheapest provider
  that has one (`AccountSlots`, the router's `Admission`) before calling the provider; the slot is given
  back when the create fails, and released by the generation's final write (`FinalWrite`).
  A crashed holder's slot comes back when its lease runs out (`SLOT_LEASE_S`).
- Uncontended, none of this costs a call of its own: the create's write takes its slot where this process
  last saw one free, on condition that nobody waits (`offer`), and the final write frees it and records the
  task time, on condition that nobody waits (else it frees it anyway and nudges the queue). A condition
  refused costs one more call and leads to the way that reads first.
- Every generation enters the queue (store/queue.py) when created; `refill` starts queued generations
  while some account has a free slot. It runs when a generation is created, when a task ends (the
  submit queue gets a nudge; event-driven, so a freed slot is refilled at once) and on each queued
  generation's retry timer (a slot freed by a lease or a backoff's end has no event).
- `queue_info` gives a queued generation its `queue_position` (1 = next) and `estimated_start_at` (from
  the average observed task time of its provider/mode/duration).

Nothing here imports services/generations.py: `refill` is handed the function that starts a generation.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel

from kling_pipeline import messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import ProviderError
from kling_pipeline.messages import SubmitMessage
from kling_pipeline.observability import SERVICE, logger, metrics
from kling_pipeline.providers.base import Provider, ProviderName
from kling_pipeline.providers.registry import Account, get_accounts
from kling_pipeline.store.documents import TransactItem, refused_by_condition
from kling_pipeline.store.generations import get_generation_store
from kling_pipeline.store.queue import QueueEntry, get_queue_store
from kling_pipeline.store.slots import AccountView, Slot, get_slot_store

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import UpdateTypeDef

_LOOK_AHEAD = 5  # a tenant's queued generations looked at per turn when the first cannot run
_MAX_STARTS_PER_REFILL = 10  # keeps a refill well inside the submitter's 120 s
_DEFAULT_TASK_S = 120.0  # task time assumed before any has been observed
_NAMESPACE, _NAMESPACE_DIMENSIONS = "KlingPipeline", {"service": SERVICE}

Start = Callable[[Generation], Generation]
Views = dict[tuple[str, str], AccountView]  # every account's slots by (provider, account)
# Slot views a running refill has just read, offered to the creates it makes (a stale view is safe: the
# conditional put refuses a slot someone else took since).
_VIEWS: ContextVar[dict[tuple[str, str], AccountView] | None] = ContextVar("capacity_views", default=None)


# The submit queue's message naming no generation: "a slot may be free, start whoever is next".
REFILL = "_refill"
_MAX_WAKE_S = 900  # SQS's longest delay


# -- admission -----------------------------------------------------------------------------------------


class AccountSlots:
    """The router's `Admission` for one generation's submit: which account got its slot."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.granted: tuple[Account, AccountView, Slot] | None = None

    @property
    def account(self) -> str | None:
        return None if self.granted is None else self.granted[0].name

    @property
    def slot(self) -> int | None:
        return None if self.granted is None else self.granted[2].index

    def take(self, provider: Provider) -> Provider | None:
        accounts = get_accounts().get(provider.name, [])
        if self.generation.request.elements:
            accounts = accounts[:1]  # custom elements exist on the provider's first account only
        if (granted := self._taken_at_create(provider, accounts)) is not None:
            return granted
        store = get_slot_store()
        now = store.now()
        hinted = _VIEWS.get() or {}
        views = [
            (
                account,
                hinted.get((provider.name.value, account.name))
                or _view(provider.name.value, account.name, account.concurrency),
            )
            for account in accounts
        ]
        # A slot it already holds first (a retried create stays on its account, where a task of ours may
        # exist), then the emptiest account (spread the load).
        views.sort(key=lambda pair: (pair[1].holds(self.generation.id, now) is None, -pair[1].free(now)))
        for account, view in views:
            slot = store.acquire(view, self.generation.id, lease_s=_slot_lease_s())
            if slot is None:
                continue
            self.granted = (account, view, slot)
            _account_gauge(view, now)
            # The router's own adapter is the first account's (wrapped for custom elements).
            return provider if account is accounts[0] else account.adapter
        return None

    def _taken_at_create(self, provider: Provider, accounts: list[Account]) -> Provider | None:
        """The slot the create's own write took (`offer`), if it is on this provider: no read needed. One
        on another provider (the first one failed over) is freed."""
        offered = _TAKEN_AT_CREATE.pop(self.generation.id, None)
        if offered is None:
            return None
        account = next((a for a in accounts if a.name == offered.account), None)
        if offered.provider != provider.name.value or account is None:
            limit = _limit(offered.provider, offered.account)
            get_slot_store().release(
                offered.provider, offered.account, self.generation.id, limit=limit, index=offered.index
            )
            return None
        view = _SEEN.get((offered.provider, offered.account)) or AccountView(
            offered.provider, offered.account, account.concurrency
        )
        self.granted = (
            account,
            view,
            Slot(offered.provider, offered.account, offered.index, self.generation.id),
        )
        return provider if account is accounts[0] else account.adapter

    def give_back(self, provider: Provider, error: ProviderError) -> None:
        if self.granted is None:
            return
        account, view, slot = self.granted
        self.granted = None
        store = get_slot_store()
        if error.kind == "throttled":
            # Read again: the view this slot was taken with may be a refill's, older than other takes.
            fresh = _view(view.provider, view.account, view.limit)
            store.throttled(fresh, base_backoff_s=get_settings().account_backoff_s)
            _account_metric("AccountThrottled", view, 1, MetricUnit.Count)
            logger.warning(
                "account refused a create at its limit; backing off",
                extra={"provider": view.provider, "account": view.account, "limit": view.effective_limit},
            )
        store.release(slot.provider, slot.account, slot.holder, limit=account.concurrency, index=slot.index)

    def succeeded(self) -> None:
        """The create went through: an account recovering from a backoff gets one more slot."""
        if self.granted is not None:
            get_slot_store().recovered(self.granted[1])


# -- the create's own slot -----------------------------------------------------------------------------

# Each account's slots as this process last read them (its own takes and frees kept up to date): where a
# create's slot is likely free. Only a guess: the conditions of the create's write decide.
_SEEN: dict[tuple[str, str], AccountView] = {}


class _QueueSeen:
    """Whether this process last saw someone waiting: then creates line up the way that reads first."""

    someone_waits = False


_QUEUE_SEEN = _QueueSeen()


@dataclass(frozen=True)
class SlotOffer:
    """A slot a create takes with its own write (the generation, its budget reservation and this, one
    transaction): on condition that nobody waits and the account is not backed off."""

    provider: str
    account: str
    index: int
    items: list[TransactItem]


# Slots the create's write took, by generation: its submit, in the same process, starts from them.
_TAKEN_AT_CREATE: dict[str, SlotOffer] = {}


def offer(generation: Generation, provider: str | None) -> SlotOffer | None:
    """A slot on `provider` (the create's first choice) for the create's write to take: the lowest free
    one of the account with the most free, as last seen here. None while someone was seen waiting, or no
    slot was seen free: the create then lines up (`admit`)."""
    if provider is None or _QUEUE_SEEN.someone_waits:
        return None
    accounts = get_accounts().get(ProviderName(provider), [])
    if generation.request.elements:
        accounts = accounts[:1]  # custom elements exist on the provider's first account only
    store = get_slot_store()
    now = store.now()
    best: tuple[int, Account, int] | None = None
    for account in accounts:
        view = _SEEN.get((provider, account.name)) or AccountView(provider, account.name, account.concurrency)
        if now < view.backoff_until:
            continue
        live = view.live(now)
        free = [
            index for index in range(min(view.limit, view.effective_limit or view.limit)) if index not in live
        ]
        if free and (best is None or len(free) > best[0]):
            best = (len(free), account, free[0])
    if best is None:
        return None
    _, account, index = best
    items = [
        get_queue_store().nobody_waits_check(),
        *store.take_items(provider, account.name, index, generation.id, lease_s=_slot_lease_s()),
    ]
    return SlotOffer(provider, account.name, index, items)


def took(generation: Generation, offered: SlotOffer) -> None:
    """The create's write took the offered slot: its submit uses it."""
    _TAKEN_AT_CREATE[generation.id] = offered
    while len(_TAKEN_AT_CREATE) > _RELEASED_KEPT:
        del _TAKEN_AT_CREATE[next(iter(_TAKEN_AT_CREATE))]
    seen = _SEEN.get((offered.provider, offered.account))
    if seen is not None:
        seen.holders[offered.index] = (generation.id, get_slot_store().now() + _slot_lease_s())


def declined(offered: SlotOffer, reasons: list[dict[str, Any]]) -> None:
    """The create's write was refused by the offer's conditions (`reasons`, in the order of its items):
    someone waits, or the account is not as last seen. The next create reads first."""
    waits, *account = (refused_by_condition(reason) for reason in reasons)
    if waits:
        _QUEUE_SEEN.someone_waits = True
    if any(account):
        _SEEN.pop((offered.provider, offered.account), None)


def _slot_lease_s() -> float:
    settings = get_settings()
    return settings.slot_lease_s or settings.task_deadline_s + 600


def someone_waits() -> bool:
    """Whether this process last saw a generation waiting for a slot: then a task's slot is freed as soon
    as the provider says the task ended, not with the final write after the download (which costs that
    write's queue check nothing, but keeps the next task waiting for the download)."""
    return _QUEUE_SEEN.someone_waits


def holds_slot(generation: Generation, views: Views | None = None) -> bool:
    """Whether the generation holds a live slot on some account (it was taking one when it stopped).
    `views`: every account's slots as just read (`account_views`), else they are read here."""
    now = get_slot_store().now()
    return any(view.holds(generation.id, now) is not None for view in (views or account_views()).values())


def release(generation: Generation, *, task_ended: bool = False) -> None:
    """Free the generation's slot (idempotent) and nudge the queue: a slot just became free.

    Best effort, never raises: it runs beside final writes and ingests that must not fail for it, and a
    slot it could not free comes back by its lease. `task_ended`: the provider said the task is over (or
    stopped it). Without that, a generation that ended on our side while its task may still run there
    (`task_may_run`) keeps its slot until the lease: the account would otherwise take one task too many.
    """
    if generation.provider is None or generation.account is None:
        return
    if generation.slot_released or generation.id in _RELEASED:
        return
    if not task_ended and task_may_run(generation):
        return
    try:
        limit = _limit(generation.provider, generation.account)
        store = get_slot_store()
        if store.release(
            generation.provider, generation.account, generation.id, limit=limit, index=generation.slot
        ):
            _released(generation)
            if not _nobody_waits():  # read after the release: a create that queued since sees the slot
                nudge()
    except Exception:
        logger.exception("slot not released; its lease frees it", extra={"generation_id": generation.id})


# Generations whose slot this process has just freed: ingest frees it when the provider says the task
# ended, and the final write right after need not try again (one conditional write per generation less).
_RELEASED: OrderedDict[str, None] = OrderedDict()
_RELEASED_KEPT = 1000


def _released(generation: Generation) -> None:
    _RELEASED[generation.id] = None
    while len(_RELEASED) > _RELEASED_KEPT:
        _RELEASED.popitem(last=False)
    if generation.account is not None and generation.slot is not None:
        seen = _SEEN.get((str(generation.provider), generation.account))
        if seen is not None and seen.holders.get(generation.slot, ("",))[0] == generation.id:
            del seen.holders[generation.slot]


def forget_process_state() -> None:
    """Drop what this process remembers (freed slots, slots seen, average task times): tests reuse ids."""
    _RELEASED.clear()
    _AVERAGES.clear()
    _SEEN.clear()
    _TAKEN_AT_CREATE.clear()
    _QUEUE_SEEN.someone_waits = False


# Our own final states that say nothing about the provider's task (it may still be running).
_TASK_MAY_RUN = frozenset({"timeout", "poll_failed", "create_unconfirmed"})


def task_may_run(generation: Generation) -> bool:
    """Whether the provider may still be running the generation's task although we are done with it:
    timed out or given up on our side, a create whose answer was lost, or canceled by the caller (the
    provider stops it only where it can; then the caller releases with `task_ended`)."""
    if generation.provider_task_id is None and generation.unconfirmed_provider is None:
        return False  # no task was ever created
    if generation.status is Status.CANCELED:
        return True
    return generation.error is not None and generation.error.code in _TASK_MAY_RUN


class FinalWrite:
    """Capacity's part of a generation's final write, in the same transaction: its task time, its slot
    freed (unless the task may still run at the provider), and a check that nobody waits — when someone
    does, the write is made again without the check and the queue is nudged (`after`). A slot no longer
    ours (its lease ran out and someone else took it) is left out the same way."""

    def __init__(self) -> None:
        self.free_slot = True
        self.check_queue = True
        self.someone_waits = False
        self._kinds: list[str] = []

    def prepare(self, generation: Generation) -> Generation:
        """The final generation as written: whether this write frees its slot."""
        frees = (
            self.free_slot
            and generation.provider is not None
            and generation.account is not None
            and generation.slot is not None
            and generation.id not in _RELEASED
            and not generation.slot_released
            and not task_may_run(generation)
        )
        return generation.model_copy(update={"slot_released": frees}) if frees else generation

    def items(self, generation: Generation) -> list[TransactItem]:
        items: list[TransactItem] = []
        self._kinds = []
        if (seconds := _observed_seconds(generation)) is not None:
            items.append(_duration_item(generation, seconds))
            self._kinds.append("task time")
        if generation.slot_released:
            assert generation.provider and generation.account and generation.slot is not None
            slots = get_slot_store()
            items.append(
                slots.release_item(generation.provider, generation.account, generation.slot, generation.id)
            )
            self._kinds.append("slot")
            if self.check_queue:
                items.append(get_queue_store().nobody_waits_check())
                self._kinds.append("queue")
        return items

    def refused(self, reasons: list[dict[str, Any]]) -> bool:
        """Its items' share of a refused transaction (in order): True when one of them refused it, and the
        write is to be made again without it."""
        refused = {
            kind for kind, reason in zip(self._kinds, reasons, strict=False) if refused_by_condition(reason)
        }
        if "slot" in refused:
            self.free_slot = False
        if "queue" in refused:
            self.check_queue, self.someone_waits = False, True
            _QUEUE_SEEN.someone_waits = True
        return bool(refused)

    def after(self, generation: Generation) -> None:
        """The final write is made: wake the queue if its slot was freed while someone waits; free a slot
        the write could not (no index known, a crash left it) the way that reads first. Best effort."""
        if generation.slot_released:
            _released(generation)
            if self.someone_waits:
                nudge()
            elif self.check_queue:
                _QUEUE_SEEN.someone_waits = False  # the write's check found nobody waiting
        elif self.free_slot:
            release(generation)


def _nobody_waits() -> bool:
    """No generation is in any line (one consistent read of the total); False when unknown."""
    try:
        _QUEUE_SEEN.someone_waits = get_queue_store().waiting() > 0
    except Exception:
        logger.exception("queue not read; acting as if someone waits")
        return False
    return not _QUEUE_SEEN.someone_waits


def took_a_slot_before(generation: Generation) -> bool:
    """Whether a refill under way sees the generation holding a slot already: an earlier start took it
    and stopped before recording its task, so a task of ours may exist (look it up before any create)."""
    views = _VIEWS.get()
    if not views:
        return False
    now = get_slot_store().now()
    return any(view.holds(generation.id, now) is not None for view in views.values())


def nudge(delay_s: int = 0) -> None:
    """Ask the submitter to refill (now, or when a backoff or a crashed holder's lease ends)."""
    try:
        messaging.send(get_settings().submit_queue_url, SubmitMessage(generation_id=REFILL), delay_s=delay_s)
    except Exception:
        logger.exception("refill nudge not sent; the queued generations' timers refill")


# -- the queue ---------------------------------------------------------------------------------------


def enqueue(generation: Generation, provider: str | None) -> None:
    """Put a queued generation in its tenant's line (idempotent; its place is its creation time)."""
    deadline = generation.deadline_at or (utcnow() + timedelta(seconds=get_settings().task_deadline_s))
    get_queue_store().enqueue(_entry(generation, provider), expires_at=deadline.timestamp() + 3600)


def admit(
    generation: Generation, provider: str | None, start: Start, *, slot_taken: bool = False
) -> Generation:
    """A just-written generation: into its tenant's line, then start what the free slots allow (this one
    if it is next); returns it as it is now, with its place in line when it waits. Never raises: the
    generation is written and its safety net (services/submitter.py) puts it in line if this could not.
    `slot_taken`: the create's write took a slot, nobody waiting (`offer`): start it at once."""
    if slot_taken or _nobody_waits():
        # Nothing to be fair to: start it at once, without a line (a few calls instead of a refill's).
        try:
            started = start(generation)
        except Exception:
            logger.exception("direct start failed; into the line", extra={"generation_id": generation.id})
        else:
            if started.status is not Status.QUEUED:
                return started
    try:
        enqueue(generation, provider)
    except Exception:
        logger.exception(
            "not in line yet; its safety net puts it there", extra={"generation_id": generation.id}
        )
        return generation
    try_refill(start)  # reads the slots after the enqueue: a slot freed meanwhile is not missed
    try:
        current = get_generation_store().get(generation.id) or generation
    except Exception:
        logger.exception("generation not read again after the refill", extra={"generation_id": generation.id})
        return generation
    return queue_info(current, newest=True)


def dequeue(generation: Generation) -> None:
    """Take a generation out of the line (canceled, failed or timed out while waiting)."""
    get_queue_store().remove(_entry(generation, None))


def refill(start: Start, views: Views | None = None) -> int:
    """Start queued generations while an account has a free slot: tenants round-robin (least recently
    served first), each tenant's oldest first. Returns how many started. `views`: every account's slots
    as the caller has just read them (`account_views`)."""
    queue = get_queue_store()
    now = get_slot_store().now()
    views = views or account_views()
    free = {key: view.free(now) for key, view in views.items() if view.free(now) > 0}
    if not free:
        wake_at = _next_free_moment(views, now)
        if wake_at is not None and queue.tenants(now):
            # No event will say so: wake up when a backed-off account or a crashed holder's slot frees.
            nudge(delay_s=max(1, min(_MAX_WAKE_S, math.ceil(wake_at - now))))
        return 0
    started = 0
    tenants = queue.tenants(now)
    if not tenants:
        _zero_a_stale_total(now)
    served: list[str] = []
    oldest: datetime | None = None
    token = _VIEWS.set(views)  # the views just read: `AccountSlots.take` need not read them again
    try:
        while tenants and started < _MAX_STARTS_PER_REFILL and any(free.values()):
            for tenant in list(tenants):
                outcome, entry = _turn(tenant, free, start)
                if entry is not None:
                    oldest = entry.created_at if oldest is None else min(oldest, entry.created_at)
                if outcome in ("started", "put back"):
                    served.append(tenant)
                if outcome == "started":
                    started += 1
                elif outcome != "again":
                    tenants.remove(tenant)  # nothing it can run now; the others may still run
                if not any(free.values()):
                    break
    finally:
        _VIEWS.reset(token)
        _to_the_back(served, now)
    if oldest is not None:
        metrics.add_metric(
            name="OldestQueuedSeconds", unit=MetricUnit.Seconds, value=(utcnow() - oldest).total_seconds()
        )
    return started


def _zero_a_stale_total(now: float) -> None:
    """No line shows anyone waiting, yet the total may count some (a tenant item expired with its count):
    read the total, then the lines again, and zero it only if it did not change meanwhile."""
    seen = get_queue_store().waiting()
    if seen and not get_queue_store().tenants(now):
        get_queue_store().reset_total(seen)


def _turn(
    tenant: str, free: dict[tuple[str, str], int], start: Start
) -> tuple[Literal["started", "put back", "again", "wait"], QueueEntry | None]:
    """One tenant's turn: start its oldest generation if a free slot can run it. `again`: its line
    changed under us (look again); `wait`: nothing of it can start now."""
    queue = get_queue_store()
    heads = queue.heads(tenant, limit=_LOOK_AHEAD)
    if not heads:
        queue.recount(tenant)
        return "wait", None
    for entry in heads:
        generation = get_generation_store().get(entry.generation_id)
        if generation is None or generation.status is not Status.QUEUED:
            queue.remove(entry)  # canceled, failed or started elsewhere
            return "again", entry
        if _runnable_on(generation, free):
            break
        # Its provider is full: the tenant's next one may run elsewhere (FCFS among those that compete
        # for the same slots; no head-of-line blocking across providers).
        logger.info("queued generation waits for its provider", extra={"generation_id": generation.id})
    else:
        return "wait", heads[0]
    if not queue.claim(entry):
        return "again", entry  # another refill took it
    try:
        result = start(generation)
    except Exception:
        queue.put_back(entry)  # its own timer and the next refill try again
        raise
    if result.status is Status.QUEUED:
        logger.info("queue head could not start; back in line", extra={"generation_id": generation.id})
        queue.put_back(entry)
        return "put back", entry
    if result.provider and result.account:
        key = (result.provider, result.account)
        free[key] = max(0, free.get(key, 1) - 1)
        _wait_metric(generation, result)
    return "started", entry


def try_refill(start: Start, views: Views | None = None) -> int:
    """`refill`, for callers whose own work must go on if it fails (an AWS error mid-way): whatever it
    did not start stays in line for the next nudge or timer."""
    try:
        return refill(start, views)
    except Exception:
        logger.exception("refill interrupted; the queue's nudges and timers try again")
        return 0


def _to_the_back(served: list[str], now: float) -> None:
    """Tenants just served go to the back of the round-robin, in the order served (one write per
    tenant, not per generation)."""
    queue = get_queue_store()
    for offset, tenant in enumerate(dict.fromkeys(reversed(served))):
        queue.served(tenant, now - offset * 1e-3)


def _runnable_on(generation: Generation, free: dict[tuple[str, str], int]) -> list[str]:
    """Providers with a free slot (as last seen) on which the generation could run."""
    from kling_pipeline.providers.registry import get_router

    try:
        supported = get_router().estimate(generation.request).ranked()
    except Exception:
        return [name for (name, _), count in free.items() if count > 0]
    if generation.request.provider is not None:
        supported = [name for name in supported if name.value == generation.request.provider]
    return [
        name.value
        for name in supported
        if any(count > 0 for (provider, _), count in free.items() if provider == name.value)
    ]


def account_views() -> Views:
    """Every account's slots, by (provider, account): one query each."""
    return {
        (provider.value, account.name): _view(provider.value, account.name, account.concurrency)
        for provider, accounts in get_accounts().items()
        for account in accounts
    }


def _view(provider: str, account: str, limit: int) -> AccountView:
    """The account's slots as read now, remembered for the next create's `offer`."""
    view = get_slot_store().view(provider, account, limit)
    _SEEN[(provider, account)] = view
    return view


def _next_free_moment(views: dict[tuple[str, str], AccountView], now: float) -> float | None:
    """When a slot frees without an event (a backoff ending, a lease running out), within SQS's longest
    delay; None when only finishing tasks will free one."""
    moments = [
        moment
        for view in views.values()
        for moment in (view.backoff_until, *(until for _, until in view.holders.values()))
        if now < moment <= now + _MAX_WAKE_S
    ]
    return min(moments, default=None)


# -- position, ETA and the capacity view ---------------------------------------------------------------


def queue_info(generation: Generation, *, newest: bool = False) -> Generation:
    """A queued generation with `queue_position` (1 = next) and `estimated_start_at` filled in.

    Round-robin across tenants: before the k-th of our line starts, each other tenant starts up to k-1
    of its own (k if it comes before us in the rotation). `newest`: the generation was just created, so
    it is last in its tenant's line (no counting). The start estimate assumes a slot frees every
    (average task time / all slots) seconds.
    """
    if generation.status is not Status.QUEUED:
        return generation
    try:
        return _with_queue_info(generation, newest=newest)
    except Exception:
        # Informative only: a read that met an AWS error shows the generation without its place in line.
        logger.exception("queue position not computed", extra={"generation_id": generation.id})
        return generation


def _with_queue_info(generation: Generation, *, newest: bool) -> Generation:
    queue = get_queue_store()
    lines = queue.lines(get_slot_store().now())
    own = next((line for line in lines if line.tenant_id == generation.tenant_id), None)
    if newest and own is not None:
        rank = max(1, own.waiting)
    else:
        rank = queue.count_before(generation.tenant_id, _entry(generation, None).sort_key) + 1
    position, before_us = rank, True
    for line in lines:
        if line.tenant_id == generation.tenant_id:
            before_us = False
            continue
        position += min(line.waiting, rank - 1 + (1 if before_us else 0))
    slots = max(1, sum(account.concurrency for accounts in get_accounts().values() for account in accounts))
    wait_s = position * _average_duration(generation) / slots
    estimated = utcnow() + timedelta(seconds=wait_s)
    return generation.model_copy(update={"queue_position": position, "estimated_start_at": estimated})


class AccountCapacity(BaseModel):
    name: str
    concurrency: int
    effective_limit: int
    in_flight: int
    backed_off_until: datetime | None = None


class ProviderCapacity(BaseModel):
    provider: str
    accounts: list[AccountCapacity]
    in_flight: int
    queued: int


class CapacityView(BaseModel):
    providers: list[ProviderCapacity]
    queued: int


def capacity_view() -> CapacityView:
    """Per provider: accounts' limits and in-flight counts, and generations waiting (no secrets)."""
    slots, queue = get_slot_store(), get_queue_store()
    now = slots.now()
    queued_by_provider: dict[str, int] = {}
    queued = 0
    for line in queue.lines(now):
        if line.waiting <= 0:
            continue
        for entry in queue.entries(line.tenant_id):
            queued += 1
            if entry.provider:
                queued_by_provider[entry.provider] = queued_by_provider.get(entry.provider, 0) + 1
    providers = []
    for provider, accounts in get_accounts().items():
        rows = []
        for account in accounts:
            view = slots.view(provider.value, account.name, account.concurrency)
            backoff = (
                datetime.fromtimestamp(view.backoff_until, tz=utcnow().tzinfo)
                if view.backoff_until > now
                else None
            )
            rows.append(
                AccountCapacity(
                    name=account.name,
                    concurrency=account.concurrency,
                    effective_limit=min(account.concurrency, view.effective_limit or account.concurrency),
                    in_flight=view.in_flight(now),
                    backed_off_until=backoff,
                )
            )
        providers.append(
            ProviderCapacity(
                provider=provider.value,
                accounts=rows,
                in_flight=sum(row.in_flight for row in rows),
                queued=queued_by_provider.get(provider.value, 0),
            )
        )
    return CapacityView(providers=providers, queued=queued)


# -- observed task times --------------------------------------------------------------------------------


def _duration_key(provider: str, generation: Generation) -> dict[str, str]:
    return {
        "pk": "STATS#TASK_SECONDS",
        "sk": f"{provider}#{generation.mode.value}#{generation.request.duration}",
    }


# One task in this many adds its time to the averages the queue's start estimates use: an average needs a
# sample, not every task, and each addition is a write billed on every generation's final write.
_TASK_TIME_SAMPLE = 4


def _observed_seconds(generation: Generation) -> float | None:
    """The task time of a succeeded generation, if it goes into the averages (a fixed quarter of the
    generations, by id, so retries of the final write decide alike)."""
    if generation.submitted_at is None or generation.status is not Status.SUCCEEDED:
        return None
    if zlib.crc32(generation.id.encode()) % _TASK_TIME_SAMPLE:
        return None
    return (utcnow() - generation.submitted_at).total_seconds()


def _duration_item(generation: Generation, seconds: float) -> TransactItem:
    """The observed task time added to its provider/mode/duration's sums (never refused)."""
    update: UpdateTypeDef = {
        "TableName": _table().name,
        "Key": _duration_key(str(generation.provider), generation),
        "UpdateExpression": "ADD total_s :s, tasks :one",
        "ExpressionAttributeValues": {":s": Decimal(str(round(seconds, 3))), ":one": 1},
    }
    return {"Update": update}


# Averages read in this process, kept for a while: an estimate needs no fresher figure, and a queued
# generation's page polled every second or two would otherwise read it each time.
_AVERAGES: dict[str, tuple[float, float]] = {}  # sort key → (read at, seconds)
_AVERAGE_TTL_S = 30.0


def _average_duration(generation: Generation) -> float:
    """Average observed task time of the provider this generation would go to (its mode and duration)."""
    provider = _preferred_provider(generation)
    if provider is None:
        return _DEFAULT_TASK_S
    key = _duration_key(provider, generation)
    now = time.monotonic()
    cached = _AVERAGES.get(key["sk"])
    if cached is not None and now - cached[0] < _AVERAGE_TTL_S:
        return cached[1]
    item = _table().get_item(Key=key).get("Item")
    tasks = int(str(item.get("tasks", 0))) if item else 0
    average = float(str(item["total_s"])) / tasks if item and tasks else _DEFAULT_TASK_S
    _AVERAGES[key["sk"]] = (now, average)
    return average


def _preferred_provider(generation: Generation) -> str | None:
    if generation.request.provider:
        return generation.request.provider
    return generation.estimated_cost.provider if generation.estimated_cost else None


# -- helpers -------------------------------------------------------------------------------------------


def _entry(generation: Generation, provider: str | None) -> QueueEntry:
    return QueueEntry(
        tenant_id=generation.tenant_id,
        generation_id=generation.id,
        created_at=generation.created_at,
        provider=provider,
    )


def _limit(provider: str, account: str) -> int:
    for candidate in get_accounts().get(ProviderName(provider), []):
        if candidate.name == account:
            return candidate.concurrency
    return 1


def _account_metric(name: str, view: AccountView, value: float, unit: MetricUnit) -> None:
    with single_metric(
        name=name, unit=unit, value=value, namespace=_NAMESPACE, default_dimensions=_NAMESPACE_DIMENSIONS
    ) as metric:
        metric.add_dimension(name="provider", value=view.provider)
        metric.add_dimension(name="account", value=view.account)


def _account_gauge(view: AccountView, now: float) -> None:
    _account_metric("AccountInFlight", view, view.in_flight(now), MetricUnit.Count)


def _wait_metric(queued: Generation, started: Generation) -> None:
    waited = (utcnow() - queued.created_at).total_seconds()
    with single_metric(
        name="SlotWaitSeconds",
        unit=MetricUnit.Seconds,
        value=waited,
        namespace=_NAMESPACE,
        default_dimensions=_NAMESPACE_DIMENSIONS,
    ) as metric:
        metric.add_dimension(name="provider", value=str(started.provider))
        metric.add_dimension(name="account", value=str(started.account))


def _table() -> Any:
    from kling_pipeline import aws

    return aws.generations_table()  # cached there


__all__ = [
    "REFILL",
    "AccountSlots",
    "CapacityView",
    "FinalWrite",
    "SlotOffer",
    "account_views",
    "admit",
    "capacity_view",
    "declined",
    "dequeue",
    "enqueue",
    "nudge",
    "offer",
    "queue_info",
    "refill",
    "release",
    "someone_waits",
    "took",
    "took_a_slot_before",
]
