"""Which providers this stack may use: every provider whose credentials are configured.

The composition root of the provider package. Nothing is built at import; `get_providers()` and
`get_router()` build once on first use and are cached for the warm Lambda (habit 2 in STYLE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import httpx

from kling_pipeline.accounts import DEFAULT_ACCOUNT, KeyAccount, KlingAccount
from kling_pipeline.config import Settings, get_settings, settings_version
from kling_pipeline.domain.ledger import Ledger
from kling_pipeline.domain.pricing import Pricing
from kling_pipeline.providers.base import Provider, ProviderName
from kling_pipeline.providers.evolink import EvoLinkProvider
from kling_pipeline.providers.http import DEFAULT_RETRY, RetryPolicy, check_base_url, make_http_client
from kling_pipeline.providers.kling import KlingProvider
from kling_pipeline.providers.kling3api import Kling3ApiProvider
from kling_pipeline.providers.router import Router


@dataclass(frozen=True)
class Account:
    """One provider account: its adapter (holding this account's credentials) and its slot count."""

    provider: ProviderName
    name: str
    concurrency: int
    adapter: Provider


def configured_accounts(
    settings: Settings, client: httpx.Client, *, retry: RetryPolicy = DEFAULT_RETRY
) -> dict[ProviderName, list[Account]]:
    """Every configured account per provider with credentials, in `ProviderName` order; base URLs checked
    (https, or http on loopback when `LOCAL_ALLOW_HTTP_LOOPBACK`). A provider's `*_ACCOUNTS` list wins
    over its single-key shorthand (one account named "default")."""
    loopback = settings.local_allow_http_loopback
    shorthand = settings.default_account_concurrency
    accounts: dict[ProviderName, list[Account]] = {}

    kling = settings.kling_accounts
    if kling is None and settings.kling_access_key and settings.kling_secret_key:
        kling = [
            KlingAccount(
                name=DEFAULT_ACCOUNT,
                access_key=settings.kling_access_key,
                secret_key=settings.kling_secret_key,
                concurrency=shorthand,
            )
        ]
    if kling:
        base_url = check_base_url(settings.kling_api_base_url, allow_http_loopback=loopback)
        accounts[ProviderName.KLING] = [
            Account(
                ProviderName.KLING,
                account.name,
                account.concurrency,
                KlingProvider(
                    access_key=account.access_key.get_secret_value(),
                    secret_key=account.secret_key.get_secret_value(),
                    base_url=base_url,
                    client=client,
                    retry=retry,
                ),
            )
            for account in kling
        ]
    gateways: tuple[tuple[ProviderName, list[KeyAccount] | None, Any, str, type[Any]], ...] = (
        (
            ProviderName.EVOLINK,
            settings.evolink_accounts,
            settings.evolink_api_key,
            settings.evolink_api_base_url,
            EvoLinkProvider,
        ),
        (
            ProviderName.KLING3API,
            settings.kling3api_accounts,
            settings.kling3api_api_key,
            settings.kling3api_base_url,
            Kling3ApiProvider,
        ),
    )
    for name, listed, single_key, url, adapter in gateways:
        keyed = listed
        if keyed is None and single_key:
            keyed = [KeyAccount(name=DEFAULT_ACCOUNT, api_key=single_key, concurrency=shorthand)]
        if not keyed:
            continue
        base_url = check_base_url(url, allow_http_loopback=loopback)
        accounts[name] = [
            Account(
                name,
                account.name,
                account.concurrency,
                adapter(
                    api_key=account.api_key.get_secret_value(), base_url=base_url, client=client, retry=retry
                ),
            )
            for account in keyed
        ]
    return accounts


def enabled_providers(
    settings: Settings, client: httpx.Client, *, retry: RetryPolicy = DEFAULT_RETRY
) -> dict[ProviderName, Provider]:
    """One adapter per provider with credentials (its first account): what routing, prices and custom
    elements see. Tasks go to the account admission control picks (`account_adapter`)."""
    return {
        name: accounts[0].adapter
        for name, accounts in configured_accounts(settings, client, retry=retry).items()
    }


def get_providers() -> dict[ProviderName, Provider]:
    """The enabled providers of this process (each one's first account); built on first use and again
    when the settings change (a rotated provider key, an added account)."""
    return _providers(settings_version())


def get_accounts() -> dict[ProviderName, list[Account]]:
    """The configured accounts of this process, sharing one HTTP client; rebuilt when settings change."""
    return _accounts(settings_version())


def get_router() -> Router:
    """The router over `get_providers()`, ranking kling3api credits at `KLING3API_USD_PER_CREDIT`."""
    return _router(settings_version())


def account_adapter(provider: ProviderName, account: str | None) -> Provider:
    """The adapter holding `account`'s credentials: a task is only ever asked about, cancelled or
    downloaded with the credentials of the account it ran on. `None` (a task recorded before accounts
    existed) means the provider's first account. Raises LookupError when it is no longer configured."""
    accounts = get_accounts().get(provider, [])
    for candidate in accounts:
        if account is None or candidate.name == account:
            return candidate.adapter
    raise LookupError(f"{provider.value} account {account or '(first)'} is not configured")


@lru_cache(maxsize=1)
def _accounts(_version: int) -> dict[ProviderName, list[Account]]:
    settings = get_settings()
    return configured_accounts(settings, make_http_client(settings))


@lru_cache(maxsize=1)
def _providers(_version: int) -> dict[ProviderName, Provider]:
    return {name: accounts[0].adapter for name, accounts in get_accounts().items()}


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
    _accounts.cache_clear()
