"""Budget reservations and settlements against moto's DynamoDB (the table from template.yaml)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kling_pipeline.domain.money import ActualCost, EstimatedCost
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import BudgetExceeded
from kling_pipeline.services import budgets
from kling_pipeline.store.budgets import BudgetStore, get_budget_store
from kling_pipeline.store.generations import get_generation_store
from tests.unit.conftest import stored_generation

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
MONTH = "2026-11"


def estimate(usd: str) -> EstimatedCost:
    return EstimatedCost(usd=Decimal(usd), provider="evolink")


@pytest.mark.usefixtures("pipeline_aws")
def test_reservations_stop_at_the_cap_and_the_refusal_writes_nothing() -> None:
    get_budget_store().set_budget("t", Decimal("1.00"))
    assert budgets.reserve("t", estimate("0.60"), now=NOW) == Decimal("0.60")
    with pytest.raises(BudgetExceeded) as refused:
        budgets.reserve("t", estimate("0.50"), now=NOW)
    assert refused.value.status_code == 402
    assert refused.value.details == {
        "month": MONTH,
        "budget_usd": "1.0000",
        "spent_usd": "0.0000",
        "reserved_usd": "0.6000",
        "estimate_usd": "0.5000",
    }
    assert budgets.reserve("t", estimate("0.40"), now=NOW) == Decimal("0.40")  # exactly the last dollars
    assert budgets.usage("t", MONTH).reserved_usd == Decimal("1.00")
    assert budgets.usage("t", MONTH).counts == {"created": 2}


@pytest.mark.usefixtures("pipeline_aws")
def test_unlimited_without_a_budget_but_still_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert budgets.budget_for("t") is None
    budgets.reserve("t", estimate("99.00"), now=NOW)
    assert budgets.usage("t", MONTH).budget_usd is None
    monkeypatch.setenv("TENANT_MONTHLY_BUDGET_USD", "5")
    from kling_pipeline.config import reset_settings

    reset_settings()
    assert budgets.budget_for("t") == Decimal(5)
    get_budget_store().set_budget("t", Decimal(50))
    assert budgets.budget_for("t") == Decimal(50)  # the override beats the stack default


@pytest.mark.usefixtures("pipeline_aws")
def test_settlement_moves_the_reservation_to_the_actual_cost_once() -> None:
    generation = stored_generation("gen_settle", status=Status.SUCCEEDED).model_copy(
        update={
            "created_at": NOW,
            "provider": "evolink",
            "reserved_usd": Decimal("0.375"),
            "actual_cost": ActualCost(usd=Decimal("0.30"), units=Decimal("21.6"), unit="evolink_credits"),
        }
    )
    budgets.reserve(generation.tenant_id, estimate("0.375"), now=NOW)
    budgets.settle(generation)
    budgets.settle(generation)  # a repeated announce changes nothing
    month = budgets.usage(generation.tenant_id, MONTH)
    assert (month.spent_usd, month.reserved_usd) == (Decimal("0.30"), Decimal(0))
    assert month.by_provider["evolink"].count == 1 and month.counts["succeeded"] == 1
    # A cost reported later (a canceled task that ran on) adds only the difference, once
    late = ActualCost(usd=Decimal("0.50"), units=Decimal(36), unit="evolink_credits")
    budgets.settle_late(generation, late)
    budgets.settle_late(generation, late)
    assert budgets.usage(generation.tenant_id, MONTH).spent_usd == Decimal("0.50")
    assert budgets.usage(generation.tenant_id, MONTH).by_mode[generation.mode.value].spent_usd == Decimal(
        "0.50"
    )


def test_triggers_reject_over_budget_requests_with_the_figures() -> None:
    # S3 uploads (→ .error.json) and EventBridge (→ Generation Request Rejected) both write this member
    from kling_pipeline.services.triggers import REJECTIONS, error_details

    figures = {"month": MONTH, "budget_usd": "1.0000", "spent_usd": "1.0000", "reserved_usd": "0.0000"}
    refused = BudgetExceeded("over", {**figures, "estimate_usd": "0.3750"})
    assert isinstance(refused, REJECTIONS)
    assert error_details(refused) == {
        "code": "budget_exceeded",
        "message": "over",
        "details": {**figures, "estimate_usd": "0.3750"},
    }


def operator_sets_budget(tenant_id: str, monthly_usd: Decimal | None) -> None:
    """`kling-pipeline tenants set-budget` from another process: this one's memory is not told."""
    from kling_pipeline import aws

    BudgetStore(aws.generations_table()).set_budget(tenant_id, monthly_usd)


@pytest.mark.usefixtures("pipeline_aws")
def test_the_reservation_rides_along_with_the_generations_create_in_one_call(calls: Counter[str]) -> None:
    generation = stored_generation("gen_a", status=Status.QUEUED)
    calls.clear()

    def create(reservation: list[Any]) -> None:
        get_generation_store().create(generation, along=reservation)

    budgets.reserve(generation.tenant_id, estimate("0.60"), now=NOW, along_with=create)

    assert calls == Counter({"TransactWriteItems": 1})  # no read of the override, no write of its own
    assert get_generation_store().get("gen_a") is not None
    assert budgets.usage(generation.tenant_id, MONTH).reserved_usd == Decimal("0.60")


@pytest.mark.usefixtures("pipeline_aws")
def test_a_refused_reservation_writes_no_generation_either() -> None:
    generation = stored_generation("gen_b", status=Status.QUEUED)
    get_budget_store().set_budget(generation.tenant_id, Decimal("1.00"))
    budgets.reserve(generation.tenant_id, estimate("0.80"), now=NOW)

    with pytest.raises(BudgetExceeded):
        budgets.reserve(
            generation.tenant_id,
            estimate("0.30"),
            now=NOW,
            along_with=lambda reservation: get_generation_store().create(generation, along=reservation),
        )
    assert get_generation_store().get("gen_b") is None
    assert budgets.usage(generation.tenant_id, MONTH).reserved_usd == Decimal("0.80")


@pytest.mark.usefixtures("pipeline_aws")
def test_a_budget_changed_by_another_process_applies_at_the_next_create() -> None:
    # This process has seen no override; the operator sets one elsewhere: the transaction's check on the
    # override refuses the stale assumption, and the cap applied is the operator's.
    operator_sets_budget("t", Decimal("1.00"))
    with pytest.raises(BudgetExceeded) as refused:
        budgets.reserve("t", estimate("2.00"), now=NOW)
    assert refused.value.details["budget_usd"] == "1.0000"
    # Raised elsewhere: the remembered 1.00 would refuse 2.00, so the current override is read first
    operator_sets_budget("t", Decimal("5.00"))
    assert budgets.reserve("t", estimate("2.00"), now=NOW) == Decimal("2.00")
    # Removed elsewhere (unlimited): a remembered cap no longer holds
    operator_sets_budget("t", None)
    assert budgets.reserve("t", estimate("9.00"), now=NOW) == Decimal("9.00")
    assert budgets.usage("t", MONTH).reserved_usd == Decimal("11.00")
