"""The USD ledger and the create-outcome rule: pure functions, no I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kling_pipeline.domain.ledger import Ledger
from kling_pipeline.domain.money import ActualCost, EstimatedCost, format_amount
from kling_pipeline.domain.pricing import Quote
from kling_pipeline.domain.request import ProviderName as P
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import ProviderError
from kling_pipeline.providers.outcome import maybe_created


@pytest.mark.parametrize(
    ("amount", "text"),
    [("0.375", "0.3750"), ("1.250250", "1.2503"), ("0.625125", "0.6251"), ("27", "27.0000"), ("0", "0.0000")],
)
def test_one_decimal_format(amount: str, text: str) -> None:
    assert format_amount(Decimal(amount)) == text
    cost = ActualCost(usd=Decimal(amount), units=Decimal(amount), unit="kling_units")
    assert cost.model_dump(mode="json")["usd"] == text
    assert ActualCost.model_validate_json(cost.model_dump_json()).usd == Decimal(text)


def test_reported_usd_wins_and_units_are_kept() -> None:
    cost = Ledger().actual(
        P.EVOLINK, Status.SUCCEEDED, reported_usd=Decimal("0.375"), reported_units=Decimal(27), estimate=None
    )
    assert (cost.usd, cost.units, cost.unit, cost.basis) == (
        Decimal("0.375"),
        Decimal(27),
        "evolink_credits",
        "reported",
    )


def test_units_are_converted_at_the_table_rate_or_the_configured_one() -> None:
    table_rate = Ledger().actual(
        P.KLING, Status.SUCCEEDED, reported_usd=None, reported_units=Decimal(3), estimate=None
    )
    assert table_rate.usd == Decimal("0.42")  # 3 units x $0.14 (pricing.json)
    configured = Ledger(overrides={P.KLING3API: Decimal("0.001")}).actual(
        P.KLING3API, Status.SUCCEEDED, reported_usd=None, reported_units=Decimal(180), estimate=None
    )
    assert (configured.usd, configured.unit) == (Decimal("0.180"), "kling3api_credits")
    evolink = Ledger().actual(
        P.EVOLINK, Status.SUCCEEDED, reported_usd=None, reported_units=Decimal(27), estimate=None
    )
    assert evolink.usd == Decimal("0.375")  # 72 credits per USD


def test_no_report_finished_is_priced_from_the_list_failed_is_not_billed() -> None:
    estimate = EstimatedCost(usd=Decimal("0.42"), provider="kling")
    finished = Ledger().actual(
        P.KLING, Status.SUCCEEDED, reported_usd=None, reported_units=None, estimate=estimate
    )
    assert (finished.usd, finished.units, finished.basis) == (Decimal("0.42"), Decimal(3), "price_list")
    failed = Ledger().actual(
        P.KLING, Status.FAILED, reported_usd=None, reported_units=None, estimate=estimate
    )
    assert (failed.usd, failed.basis) == (Decimal(0), "not_billed")


def test_an_unfindable_lost_create_is_counted_at_its_estimate() -> None:
    estimate = EstimatedCost(usd=Decimal("0.36"), provider="kling3api")
    cost = Ledger().assumed_charged(P.KLING3API, estimate)
    assert (cost.usd, cost.units, cost.basis) == (Decimal("0.36"), Decimal(180), "assumed_charged")


def test_credit_quotes_get_a_usd_estimate() -> None:
    quote = Quote(provider=P.KLING3API, supported=True, credits=Decimal(180))
    assert Ledger().estimated(quote) == EstimatedCost(usd=Decimal("0.360"), provider="kling3api")
    assert Ledger().estimated(Quote(provider=P.KLING, supported=True)) is None  # unpriced


@pytest.mark.parametrize(
    ("error", "created"),
    [
        (ProviderError("p", "retryable", "provider_error", "refused", sent=False), False),
        (ProviderError("p", "throttled", "rate_limited", "429", http_status=429), False),
        (ProviderError("p", "final", "auth", "401", http_status=401), False),
        (ProviderError("p", "final", "bad_request", "400", http_status=400), False),
        (ProviderError("p", "retryable", "account_error", "402", http_status=402), False),
        (ProviderError("p", "throttled", "concurrency_limited", "1303 in a 200", http_status=200), False),
        (ProviderError("p", "retryable", "provider_error", "500", http_status=500), True),
        (ProviderError("p", "retryable", "provider_error", "5000 in a 200", http_status=200), True),
        (ProviderError("p", "retryable", "timeout", "read timeout"), True),
        (
            ProviderError(
                "p", "throttled", "rate_limited", "429 after a 500", http_status=429, maybe_created=True
            ),
            True,
        ),
    ],
)
def test_which_create_failures_may_have_made_a_task(error: ProviderError, created: bool) -> None:
    assert maybe_created(error) is created
