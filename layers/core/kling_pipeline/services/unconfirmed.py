"""A create whose answer was lost: find out, per provider, without ever paying twice.

The router never fails over after such an answer (a task of ours may exist there). What happens next
depends on what the provider lets us learn (docs/providers.md "Lost create answers"):

- `lookup` (Kling, `external_task_id`): the generation stays queued for that provider only; every retry
  first looks the task up by our id and re-sends the create only when the provider says it does not exist.
- `callback` (EvoLink, our per-generation callback URL): the generation waits, `submitted` without a task
  id; the callback that arrives for a task we own names it, and ingest adopts it. The fallback poller's
  deadline bounds the wait.
- `none` (kling3api: no callback, no id of ours, no task list): nothing can ever be learnt. The generation
  fails with `create_unconfirmed` and is counted as charged at its estimate.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline import messaging
from kling_pipeline.domain.generation import Generation
from kling_pipeline.domain.money import EstimatedCost
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import CreateUnconfirmed
from kling_pipeline.observability import logger, metrics
from kling_pipeline.providers.base import LostCreate, ProviderName
from kling_pipeline.providers.registry import get_ledger, get_providers
from kling_pipeline.services import lifecycle
from kling_pipeline.services.deadlines import first_wait_s
from kling_pipeline.store.generations import get_generation_store

Requeue = Callable[[Generation, CreateUnconfirmed], Generation]


def strategy(provider: ProviderName, *, has_callback: bool) -> LostCreate:
    """How we can learn about a task whose create answer was lost at `provider`."""
    adapter = get_providers().get(provider)
    found: LostCreate = adapter.lost_create if adapter is not None else "none"
    if found == "callback" and not has_callback:
        return "none"  # no public callback URL was sent: nothing will ever call us back
    return found


def hold(
    generation: Generation,
    error: CreateUnconfirmed,
    *,
    estimate: EstimatedCost | None,
    has_callback: bool,
    requeue: Requeue,
    account: str | None = None,
) -> Generation:
    """Keep the generation with the provider that may have its task; never send it anywhere else.

    `account`: where the create went. It is recorded, and the slot taken there stays taken (the task may
    be running): a lookup asks that account, a retry takes the same slot, and its lease frees it at the
    latest (services/capacity.py)."""
    provider = ProviderName(error.provider)
    how = strategy(provider, has_callback=has_callback)
    metrics.add_metric(name="CreateUnconfirmed", unit=MetricUnit.Count, value=1)
    logger.warning(
        "create answer lost; staying with the provider",
        extra={"generation_id": generation.id, "provider": provider.value, "strategy": how},
    )
    store = get_generation_store()
    if how == "lookup":
        pinned = store.update(
            generation.id,
            lambda g: (
                g.model_copy(
                    update={
                        "unconfirmed_provider": provider.value,
                        "account": account or g.account,
                        "estimated_cost": estimate,
                    }
                )
                if g.status is Status.QUEUED
                else None
            ),
        )
        return requeue(pinned or generation, error)
    if how == "callback":
        return wait_for_callback(generation, provider, account=account, estimate=estimate)
    # Remembered before the failure is written: if that write fails, the retry must not create again.
    marked = store.update(
        generation.id,
        lambda g: g.model_copy(
            update={"estimated_cost": estimate, "account": account, "unconfirmed_provider": provider.value}
        ),
    )
    return fail_unknowable(marked or generation, provider)


def wait_for_callback(
    generation: Generation, provider: ProviderName, *, account: str | None, estimate: EstimatedCost | None
) -> Generation:
    """`callback`: the generation waits, `submitted` without a task id, for the callback that names its
    task (ingest adopts it); the fallback poller's deadline bounds the wait. Never sent again."""
    store = get_generation_store()
    waiting = store.transition(
        generation.id,
        Status.SUBMITTED,
        provider=provider.value,
        account=account,
        unconfirmed_provider=provider.value,
        estimated_cost=estimate,
        submit_lease_until=None,
    )
    # Ours also when the write was applied with its answer lost and its retry refused: watch it then too.
    current = waiting or store.get(generation.id)
    if current is None or not _waits_for(current, provider):
        return current or generation  # moved on (canceled, say): whoever moved it watches it
    messaging.start_fallback(generation.id, first_wait_s=first_wait_s(current))
    return current


def fail_unknowable(generation: Generation, provider: ProviderName) -> Generation:
    """Fail a generation whose create answer was lost where nothing can ever be learnt (`none`): it is
    never sent again, and counted as charged at its estimate."""
    message = (
        f"{provider.value} did not confirm the create and offers no way to find the task; "
        "not sent elsewhere so it is never paid twice"
    )
    charged = get_ledger().assumed_charged(provider, generation.estimated_cost)
    failed = lifecycle.fail(generation.id, "create_unconfirmed", message, actual_cost=charged)
    return failed or get_generation_store().get(generation.id) or generation


def _waits_for(current: Generation, provider: ProviderName) -> bool:
    """Submitted at `provider` on an unconfirmed create — with its task adopted already or not: a callback
    can name the task while the generation is still queued (its sender died before writing the answer),
    and the watch must start all the same (found by the chaos run: adopted while queued, never polled)."""
    return current.status is Status.SUBMITTED and current.unconfirmed_provider == provider.value


def adopt(generation: Generation, provider: str, task_id: str) -> Generation | None:
    """Record the task a callback named for a generation waiting on an unconfirmed create."""

    def record(current: Generation) -> Generation | None:
        if current.provider_task_id is not None or current.unconfirmed_provider != provider:
            return None
        return current.model_copy(update={"provider_task_id": task_id})

    adopted = get_generation_store().update(generation.id, record)
    if adopted is not None:
        logger.info("adopted the task of an unconfirmed create", extra={"generation_id": generation.id})
        metrics.add_metric(name="UnconfirmedCreateAdopted", unit=MetricUnit.Count, value=1)
    return adopted
