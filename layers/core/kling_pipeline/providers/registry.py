"""Which providers this stack may use: every provider whose credentials are configured.

The composition root of the provider package. Nothing is built at import; `get_providers()` and
`get_router()` build once on first use and are cached for the warm Lambda (habit 2 in STYLE.md).
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

import httpx

from kling_pipeline.config import Settings, get_settings, settings_version
from kling_pipeline.domain.ledger import Ledger
from kling_pipeline.domain.pricing import Pricing
from kling_pipeline.providers.base import Provider, ProviderName
from kling_pipeline.providers.evolink import EvoLinkProvider
from kling_pipeline.providers.http import DEFAULT_RETRY, RetryPolicy, check_base_url, make_http_client
from kling_pipeline.providers.kling import KlingProvider
from kling_pipeline.providers.kling3api import Kling3ApiProvider
from kling_pipeline.providers.router import Router


def enabled_providers(
    settings: Settings, client: httpx.Client, *, retry: RetryPolicy = DEFAULT_RETRY
) -> dict[ProviderName, Provider]:
    """One adapter per provider with credentials, in `ProviderName` order; base URLs checked (https, or
    http on loopback when `LOCAL_ALLOW_HTTP_LOOPBACK`)."""
    loopback = settings.local_allow_http_loopback
    providers: dict[ProviderName, Provider] = {}
    if settings.kling_access_key and settings.kling_secret_key:
        providers[ProviderName.KLING] = KlingProvider(
            access_key=settings.kling_access_key.get_secret_value(),
            secret_key=settings.kling_secret_key.get_secret_value(),
            base_url=check_base_url(settings.kling_api_base_url, allow_http_loopback=loopback),
            client=client,
            retry=retry,
        )
    if settings.evolink_api_key:
        providers[ProviderName.EVOLINK] = EvoLinkProvider(
            api_key=settings.evolink_api_key.get_secret_value(),
            base_url=check_base_url(settings.evolink_api_base_url, allow_http_loopback=loopback),
            client=client,
            retry=retry,
        )
    if settings.kling3api_api_key:
        providers[ProviderName.KLING3API] = Kling3ApiProvider(
            api_key=settings.kling3api_api_key.get_secret_value(),
            base_url=check_base_url(settings.kling3api_base_url, allow_http_loopback=loopback),
            client=client,
            retry=retry,
        )
    return providers


def get_providers() -> dict[ProviderName, Provider]:
    """The enabled providers of this process, sharing one HTTP client; built on first use and again when
    the settings change (a rotated provider key)."""
    return _providers(settings_version())


def get_router() -> Router:
    """The router over `get_providers()`, ranking kling3api credits at `KLING3API_USD_PER_CREDIT`."""
    return _router(settings_version())


@lru_cache(maxsize=1)
def _providers(_version: int) -> dict[ProviderName, Provider]:
    settings = get_settings()
    return enabled_providers(settings, make_http_client(settings))


@lru_cache(maxsize=1)
def _router(_version: int) -> Router:
    pricing = Pricing(usd_per_credit=get_settings().kling3api_usd_per_credit)
    return Router(get_providers(), pricing)


@lru_cache(maxsize=1)
def get_ledger() -> Ledger:
    """USD conversions at pricing.json's rates, overridden by `KLING_USD_PER_UNIT` and
    `KLING3API_USD_PER_CREDIT` when set."""
    settings = get_settings()
    configured = {
        ProviderName.KLING: settings.kling_usd_per_unit,
        ProviderName.KLING3API: settings.kling3api_usd_per_credit,
    }
    overrides = {name: Decimal(str(rate)) for name, rate in configured.items() if rate is not None}
    return Ledger(overrides=overrides)


def reset_providers() -> None:
    """Forget the cached providers, router and ledger (tests and the local stack change the environment)."""
    get_ledger.cache_clear()
    _router.cache_clear()
    _providers.cache_clear()
