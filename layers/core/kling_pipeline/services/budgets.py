"""Tenant monthly budgets: reserve at create, settle at the end, report usage.

The cap is the tenant's override (`kling-pipeline tenants set-budget`) or the stack's
`TENANT_MONTHLY_BUDGET_USD`; unset means unlimited, and usage is still counted. A create reserves its
estimate with one conditional write before anything else is written or sent, so two concurrent creates
can never both pass the last dollars; the announce of the final state settles the reservation to the
actual cost (once, whoever announces). A month is the UTC calendar month the generation was created in.
"""

from __future__ import annotations

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
    override = get_budget_store().get_budget(tenant_id)
    if override is not None:
        return override
    default = get_settings().tenant_monthly_budget_usd
    return None if default is None else Decimal(str(default))


def reserve(tenant_id: str, estimate: EstimatedCost | None, *, now: datetime) -> Decimal:
    """Reserve the estimate in `now`'s month or raise `BudgetExceeded`; returns the amount reserved."""
    amount = quantize(estimate.usd) if estimate is not None else ZERO
    month = month_of(now)
    budget = budget_for(tenant_id)
    store = get_budget_store()
    headroom = None if budget is None else budget - amount
    if not store.reserve(tenant_id, month, amount, headroom=headroom):
        assert budget is not None  # only a capped reservation can be refused
        usage = store.usage(tenant_id, month)
        metrics.add_metric(name="BudgetExceeded", unit=MetricUnit.Count, value=1)
        raise BudgetExceeded(
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
    return amount


def release(tenant_id: str, amount: Decimal, *, now: datetime) -> None:
    """Give back a reservation whose generation was never written."""
    get_budget_store().release(tenant_id, month_of(now), amount)


def settle(generation: Generation) -> None:
    """Settle a final generation's reservation to its actual cost (no-op when settled before)."""
    actual = generation.actual_cost.usd if generation.actual_cost is not None else ZERO
    settled = get_budget_store().settle(
        _settlement(generation, reserved=generation.reserved_usd, actual=actual)
    )
    if settled:
        logger.info("budget settled", extra={"generation_id": generation.id, "usd": format_amount(actual)})


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
