"""What a generation costs at each provider, from the seeds' price lists (`pricing.json`, data not code).

Pure: the table is package data read once; `estimate` does arithmetic on a validated request. Prices are
kept as `Decimal` so `5 * 0.075 * 1.667` is exactly `0.625125`, as the seeds' arithmetic would give.

Ranking: cheapest USD first. kling3api prices in credits only; a credit's USD value is a property of the
account (`KLING3API_USD_PER_CREDIT`), so without it such a quote is shown but ranked after every USD
quote, and the quote says so. Prices no seed states are marked `assumed` in the table and in the quote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kling_pipeline.domain.money import Amount, ProviderUnit
from kling_pipeline.domain.request import GenerationRequest, Mode, Model, ProviderName, Quality

Unit = Literal["usd", "credits", "unpriced"]
Billing = Literal["duration", "input_length", "fixed"]

_ORDER = {name: index for index, name in enumerate(ProviderName)}


class Rate(BaseModel):
    """One row of the table: a provider's price for one model in some modes."""

    model_config = ConfigDict(frozen=True)

    provider: ProviderName
    model: Model
    modes: list[Mode]
    unit: Unit
    billing: Billing
    base_per_second: Decimal | None = None
    multipliers: dict[str, Decimal] = Field(default_factory=dict)
    per_second: dict[str, Decimal] = Field(default_factory=dict)
    fixed: dict[str, Decimal] = Field(default_factory=dict)
    source: str
    assumed: str | None = None

    def unit_price(self, quality: Quality, sound: bool) -> Decimal | None:
        """Per second (or per task when `fixed`); None when the row has no figure for this combination."""
        key = f"{quality.value}+{'on' if sound else 'off'}"
        if self.base_per_second is not None:
            multiplier = self.multipliers.get(key)
            return None if multiplier is None else self.base_per_second * multiplier
        prices = self.fixed if self.billing == "fixed" else self.per_second
        return prices.get(key, prices.get(quality.value))


class UnitRate(BaseModel):
    """What one of a provider's own units is worth in USD (the ledger's conversion, data not code)."""

    model_config = ConfigDict(frozen=True)

    unit: ProviderUnit
    usd_per_unit: Decimal | None = None
    units_per_usd: Decimal | None = None
    setting: str | None = None
    source: str
    assumed: str | None = None

    def usd(self, units: Decimal, *, override: Decimal | None = None) -> Decimal:
        """`units` in USD, at the configured rate (`override`) when there is one."""
        if override is not None:
            return units * override
        if self.usd_per_unit is not None:
            return units * self.usd_per_unit
        if self.units_per_usd:
            return units / self.units_per_usd
        raise ValueError(f"no conversion rate for {self.unit}")

    def units(self, usd: Decimal, *, override: Decimal | None = None) -> Decimal:
        """The inverse of `usd`: a USD price in this provider's units."""
        rate = override if override is not None else self.usd_per_unit
        if rate:
            return usd / rate
        if self.units_per_usd is not None:
            return usd * self.units_per_usd
        raise ValueError(f"no conversion rate for {self.unit}")


class PricingTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    min_billed_seconds: int
    max_input_video_seconds: int
    units: dict[ProviderName, UnitRate]
    rows: list[Rate]

    def find(self, provider: ProviderName, model: Model, mode: Mode) -> Rate | None:
        return next(
            (r for r in self.rows if r.provider is provider and r.model is model and mode in r.modes), None
        )


class Quote(BaseModel):
    """One provider's price for one request. `supported=False` quotes say why in `reason`."""

    provider: ProviderName
    supported: bool
    reason: str | None = None
    usd: Amount | None = None
    credits: Amount | None = None
    billed_seconds: int | None = None
    note: str | None = None  # assumptions, conversions, why a supported quote is ranked last


class Estimate(BaseModel):
    """Every enabled provider's quote, best first, and the provider the router would choose."""

    quotes: list[Quote]
    chosen: ProviderName | None
    note: str | None = None

    def ranked(self) -> list[ProviderName]:
        """Supported providers, cheapest first (the router's failover order)."""
        return [quote.provider for quote in self.quotes if quote.supported]


@lru_cache(maxsize=1)
def load_table() -> PricingTable:
    """The packaged `pricing.json`, parsed once."""
    text = resources.files("kling_pipeline.domain").joinpath("pricing.json").read_text(encoding="utf-8")
    return PricingTable.model_validate(json.loads(text))


def _notes(*parts: str | None) -> str | None:
    text = "; ".join(part for part in parts if part)
    return text or None


class Pricing:
    """The price table plus the account facts needed to compare providers (USD per kling3api credit)."""

    def __init__(self, table: PricingTable | None = None, *, usd_per_credit: float | None = None) -> None:
        self.table = table or load_table()
        self.usd_per_credit = Decimal(str(usd_per_credit)) if usd_per_credit is not None else None

    def billed_seconds(self, request: GenerationRequest, rate: Rate) -> tuple[int | None, str | None]:
        """Seconds charged, with the 3-second minimum; video-edit bills the input video's length, and
        while that length is unknown the estimate uses the longest input allowed (an upper bound)."""
        if rate.billing == "fixed":
            return None, None
        seconds = request.effective_duration
        note = None
        if seconds is None:
            seconds = self.table.max_input_video_seconds
            note = f"input video length unknown: priced at the {seconds} s maximum"
        return max(self.table.min_billed_seconds, seconds), note

    def quote(
        self, request: GenerationRequest, provider: ProviderName, unsupported: str | None = None
    ) -> Quote:
        if unsupported:
            return Quote(provider=provider, supported=False, reason=unsupported)
        rate = self.table.find(provider, request.model, request.mode)
        if rate is None:
            reason = f"{provider.value} does not offer {request.model.value} {request.mode.value}"
            return Quote(provider=provider, supported=False, reason=reason)
        seconds, seconds_note = self.billed_seconds(request, rate)
        price = None if rate.unit == "unpriced" else rate.unit_price(request.quality, request.sound)
        if price is None:
            note = f"no published price for {request.model.value} {request.quality.value}: ranked last"
            return Quote(provider=provider, supported=True, billed_seconds=seconds, note=note)
        amount = price * seconds if seconds is not None else price
        assumed = f"assumed: {rate.assumed}" if rate.assumed else None
        if rate.unit == "usd":
            return Quote(
                provider=provider,
                supported=True,
                usd=amount,
                billed_seconds=seconds,
                note=_notes(assumed, seconds_note),
            )
        if self.usd_per_credit is None:
            ranking = "priced in credits only and no USD value per credit is configured: ranked last"
            usd = None
        else:
            ranking = f"converted at ${self.usd_per_credit} per credit"
            usd = amount * self.usd_per_credit
        return Quote(
            provider=provider,
            supported=True,
            usd=usd,
            credits=amount,
            billed_seconds=seconds,
            note=_notes(assumed, seconds_note, ranking),
        )

    def estimate(
        self,
        request: GenerationRequest,
        enabled: Iterable[ProviderName],
        *,
        unsupported: Mapping[ProviderName, str | None] | None = None,
    ) -> Estimate:
        """Quotes for the enabled providers, best first: USD-priced supported quotes by price, then
        supported quotes without a USD figure, then unsupported ones. Ties keep provider order."""
        reasons = unsupported or {}
        quotes = [self.quote(request, name, reasons.get(name)) for name in dict.fromkeys(enabled)]
        quotes.sort(
            key=lambda q: (
                not q.supported,
                q.usd is None,
                q.usd if q.usd is not None else 0,
                _ORDER[q.provider],
            )
        )
        chosen = quotes[0] if quotes and quotes[0].supported else None
        note = None
        if chosen is not None and chosen.usd is None:
            note = "no provider has a USD price for this request: chosen by provider order"
        return Estimate(quotes=quotes, chosen=chosen.provider if chosen else None, note=note)


def estimate(
    request: GenerationRequest,
    enabled: Iterable[ProviderName],
    usd_per_credit: float | None,
    *,
    unsupported: Mapping[ProviderName, str | None] | None = None,
) -> Estimate:
    """`Pricing(usd_per_credit=…).estimate(…)` with the packaged table."""
    return Pricing(usd_per_credit=usd_per_credit).estimate(request, enabled, unsupported=unsupported)
