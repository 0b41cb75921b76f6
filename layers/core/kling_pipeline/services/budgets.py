"""Tenant monthly budgets: reserve at create, settle at the end, report usage.

The cap is the tenant's override (`kling-pipeline tenants set-budget`) or the stack's
`TENANT_MONTHLY_BUDGET_USD`; unset means unlimited, and usage is still counted. A create reserves its
estimate with a conditional write in the same transaction as the generation's own write (nothing is
written without its reservation, nor reserved for nothing), so two concurrent creates can never both pass
the last dollars; the final status's write settles the reservation to the actual cost in the same way
(and an announce after a crash settles what was not: once, by its marker). A month is the UTC calendar
month the generation was created in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, Field

from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.money import ZERO, ActualCost, Amount, EstimatedCost, format_amount, quantize
from kling_pipeline.errors import BudgetExceeded, InvalidInput
from kling_pipeline.observability import logger, metrics
from kling_pipeline.store.budgets import Settlement, get_budget_store
from kling_pipeline.store.documents import AlongRefused, TransactItem, refused_by_condition


class Breakdown(BaseModel):
    count: int
    spent_usd: Amount


class Usage(BaseModel):
    """`GET /v1/usage`: one tenant's month."""

    month: str = Field(description="YYYY-MM (UTC).")
    budget_usd: Amount | None = Field(description="The monthly cap; null when unlimited.")
    spent_usd: Amount = Field(description="Actual costs of the month's finished generations.")
    reserved_usd: Amount = Field(description="Estimates of the month's generations still running.")
    counts: dict[str, int] = Field(description="Generations created, and how many ended in each state.")
    by_provider: dict[str, Breakdown]
    by_mode: dict[str, Breakdown]


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def parse_month(text: str | None) -> str:
    """`YYYY-MM` as given (checked), or the current month."""
    if text is None:
        return month_of(utcnow())
    try:
        return month_of(datetime.strptime(text, "%Y-%m"))
    except ValueError:
        raise InvalidInput.for_field("month", "must be YYYY-MM, e.g. 2026-11") from None


def budget_for(tenant_id: str) -> Decimal | None:
    """The tenant's override, else the stack's default; None: unlimited."""
    return _cap(get_budget_store().get_budget(tenant_id))


def _cap(override: Decimal | None) -> Decimal | None:
    if override is not None:
        return override
    default = get_settings().tenant_monthly_budget_usd
    return None if default is None else Decimal(str(default))


def reserved_amount(estimate: EstimatedCost | None) -> Decimal:
    """What a create with this estimate reserves (the generation records it, to settle it later)."""
    return quantize(estimate.usd) if estimate is not None else ZERO


def reserve(
    tenant_id: str,
    estimate: EstimatedCost | None,
    *,
    now: datetime,
    along_with: Callable[[list[TransactItem]], None] | None = None,
) -> Decimal:
    """Reserve the estimate in `now`'s month or raise `BudgetExceeded`; returns the amount reserved.

    `along_with(items)` makes the caller's own write with the reservation's items in one transaction (the
    create); without it they are written on their own. The cap is the tenant's override as this process
    last saw it (none assumed at first), checked in the same transaction: only when the override changed
    is it read, and the transaction made again."""
    amount = reserved_amount(estimate)
    month = month_of(now)
    store = get_budget_store()
    override, fresh = store.remembered_budget(tenant_id), False
    for _ in range(3):
        budget = _cap(override)
        headroom = None if budget is None else budget - amount
        if headroom is not None and headroom < 0:
            if not fresh:  # refuse only on the current override
                override, fresh = store.get_budget(tenant_id), True
                continue
            raise _exceeded(tenant_id, month, amount, budget)
        items = store.reservation(tenant_id, month, amount, override=override, headroom=headroom)
        try:
            (along_with or store.transact)(items)
        except AlongRefused as refused:
            override_changed, over_cap = (refused_by_condition(reason) for reason in refused.reasons[:2])
            if override_changed:
                override, fresh = store.get_budget(tenant_id), True
                continue
            if over_cap:
                raise _exceeded(tenant_id, month, amount, budget) from None
            raise
        return amount
    raise RuntimeError(f"the budget of {tenant_id} kept changing during a create; try again")


def _exceeded(tenant_id: str, month: str, amount: Decimal, budget: Decimal | None) -> BudgetExceeded:
    assert budget is not None  # only a capped reservation can be refused
    usage = get_budget_store().usage(tenant_id, month)
    metrics.add_metric(name="BudgetExceeded", unit=MetricUnit.Count, value=1)
    return BudgetExceeded(
        f"this request's estimate of ${format_amount(amount)} would exceed the monthly budget of "
        f"${format_amount(budget)} ({month}: ${format_amount(usage.spent_usd)} spent, "
        f"${format_amount(usage.reserved_usd)} reserved)",
        {
            "month": month,
            "budget_usd": format_amount(budget),
            "spent_usd": format_amount(usage.spent_usd),
            "reserved_usd": format_amount(usage.reserved_usd),
            "estimate_usd": format_amount(amount),
        },
    )


def settle(generation: Generation) -> None:
    """Settle a final generation's reservation to its actual cost (no-op when settled before)."""
    actual = generation.actual_cost.usd if generation.actual_cost is not None else ZERO
    settled = get_budget_store().settle(
        _settlement(generation, reserved=generation.reserved_usd, actual=actual)
    )
    if settled:
        logger.info("budget settled", extra={"generation_id": generation.id, "usd": format_amount(actual)})


def settlement(generation: Generation) -> list[TransactItem]:
    """`settle` as transaction items, to go along with the write of the final status itself."""
    actual = generation.actual_cost.usd if generation.actual_cost is not None else ZERO
    return get_budget_store().settlement(
        _settlement(generation, reserved=generation.reserved_usd, actual=actual)
    )


def settle_late(generation: Generation, cost: ActualCost) -> None:
    """A cost reported after the final state (a canceled task that ran on): add the difference, once."""
    store = get_budget_store()
    first = store.settled_usd(generation.id)
    if first is None:
        return  # not settled yet: the pending settlement will read the new cost itself
    delta = quantize(cost.usd) - first
    if delta:
        store.settle(_settlement(generation, reserved=ZERO, actual=delta), late=True)


def usage(tenant_id: str, month: str) -> Usage:
    stored = get_budget_store().usage(tenant_id, month)
    counts = {key: int(value) for key, value in stored.breakdown("count", "status").items()}
    return Usage(
        month=month,
        budget_usd=budget_for(tenant_id),
        spent_usd=stored.spent_usd,
        reserved_usd=stored.reserved_usd,
        counts=counts,
        by_provider=_breakdown(stored.breakdown("count", "provider"), stored.breakdown("spent", "provider")),
        by_mode=_breakdown(stored.breakdown("count", "mode"), stored.breakdown("spent", "mode")),
    )


def _breakdown(counts: dict[str, Decimal], spent: dict[str, Decimal]) -> dict[str, Breakdown]:
    return {
        key: Breakdown(count=int(counts.get(key, 0)), spent_usd=spent.get(key, ZERO))
        for key in sorted({*counts, *spent})
    }


def _settlement(generation: Generation, *, reserved: Decimal, actual: Decimal) -> Settlement:
    return Settlement(
        tenant_id=generation.tenant_id,
        month=month_of(generation.created_at),
        generation_id=generation.id,
        reserved_usd=reserved,
        actual_usd=quantize(actual),
        provider=generation.provider,
        mode=generation.mode.value,
        status=generation.status.value,
    )
