"""Money in one format: USD and provider units as Decimal inside, a string with four places outside.

Why one type: every response, event and webhook shows amounts the same way ("0.3750"), so a client never
has to guess whether "0.375" and "0.375000" differ. Amounts are exact Decimals in Python and rounded half-up
to four places whenever written out.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer

PLACES = Decimal("0.0001")

ProviderUnit = Literal["evolink_credits", "kling_units", "kling3api_credits"]


def quantize(amount: Decimal) -> Decimal:
    """`amount` at the published precision (four places, half up)."""
    return amount.quantize(PLACES, rounding=ROUND_HALF_UP)


def format_amount(amount: Decimal) -> str:
    """The one written form of every amount: `"0.3750"`."""
    return f"{quantize(amount):f}"


# Every dump writes the fixed string (API bodies, events, webhooks and the stored document alike).
Amount = Annotated[Decimal, PlainSerializer(format_amount, return_type=str)]


class EstimatedCost(BaseModel):
    """What the generation should cost at the provider actually chosen (updated on failover/queueing)."""

    usd: Amount
    provider: str


class ActualCost(BaseModel):
    """What the provider charged: USD always, plus the provider's own figure in its own unit."""

    usd: Amount
    units: Amount | None = None
    unit: ProviderUnit | None = None
    basis: Literal["reported", "price_list", "not_billed", "assumed_charged"] = "reported"


ZERO = Decimal(0)
