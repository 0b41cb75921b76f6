"""The one USD ledger: what a generation should cost and what its provider charged, in USD and units.

Pure. Rates come from `pricing.json` ("units") and the settings that override them
(`KLING_USD_PER_UNIT`, `KLING3API_USD_PER_CREDIT`), never from code. Rules, per docs/integrations.md:

- the provider's own report wins (EvoLink `usage.cost_usd` / `usage.credits`, Kling `final_unit_deduction`,
  kling3api `consumed_credits`), converted to USD at the configured rate;
- a finished task the provider reports no cost for is priced from the price list (`basis: price_list`);
- a failed or canceled task without a report is not billed (`basis: not_billed`), the seeds' rule for
  EvoLink and our assumption for the others;
- a create whose answer was lost at a provider where no task can be looked up is counted as charged at
  the estimate (`basis: assumed_charged`): never under-report money that may be gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from kling_pipeline.domain.money import ZERO, ActualCost, EstimatedCost
from kling_pipeline.domain.pricing import PricingTable, Quote, UnitRate, load_table
from kling_pipeline.domain.request import ProviderName
from kling_pipeline.domain.status import Status


class Ledger:
    """Conversions between each provider's unit and USD, with the stack's configured overrides."""

    def __init__(
        self,
        table: PricingTable | None = None,
        *,
        overrides: Mapping[ProviderName, Decimal | None] | None = None,
    ) -> None:
        self.table = table or load_table()
        self.overrides = dict(overrides or {})

    def rate(self, provider: ProviderName) -> UnitRate:
        return self.table.units[provider]

    def to_usd(self, provider: ProviderName, units: Decimal) -> Decimal:
        return self.rate(provider).usd(units, override=self.overrides.get(provider))

    def to_units(self, provider: ProviderName, usd: Decimal) -> Decimal:
        return self.rate(provider).units(usd, override=self.overrides.get(provider))

    def estimated(self, quote: Quote) -> EstimatedCost | None:
        """The quote in USD (credits converted); None when the provider publishes no price for it."""
        if quote.usd is not None:
            return EstimatedCost(usd=quote.usd, provider=quote.provider.value)
        if quote.credits is not None:
            return EstimatedCost(
                usd=self.to_usd(quote.provider, quote.credits), provider=quote.provider.value
            )
        return None

    def actual(
        self,
        provider: ProviderName,
        status: Status,
        *,
        reported_usd: Decimal | None,
        reported_units: Decimal | None,
        estimate: EstimatedCost | None,
    ) -> ActualCost:
        """What the task cost, from the provider's report when it made one."""
        unit = self.rate(provider).unit
        if reported_usd is not None:
            units = reported_units if reported_units is not None else self.to_units(provider, reported_usd)
            return ActualCost(usd=reported_usd, units=units, unit=unit, basis="reported")
        if reported_units is not None:
            return ActualCost(
                usd=self.to_usd(provider, reported_units), units=reported_units, unit=unit, basis="reported"
            )
        if status is Status.SUCCEEDED and estimate is not None and estimate.provider == provider.value:
            units = self.to_units(provider, estimate.usd)
            return ActualCost(usd=estimate.usd, units=units, unit=unit, basis="price_list")
        return ActualCost(usd=ZERO, units=ZERO, unit=unit, basis="not_billed")

    def assumed_charged(self, provider: ProviderName, estimate: EstimatedCost | None) -> ActualCost:
        """A task that may exist but can never be found: counted at its estimate."""
        usd = estimate.usd if estimate is not None else ZERO
        return ActualCost(
            usd=usd,
            units=self.to_units(provider, usd),
            unit=self.rate(provider).unit,
            basis="assumed_charged",
        )

    @staticmethod
    def nothing() -> ActualCost:
        """No task was ever created: nothing to pay."""
        return ActualCost(usd=ZERO, basis="not_billed")
