"""Fault knobs and credentials of the provider simulator.

`SimConfig` is one live object per server: tests change it in-process (`server.config.failure_rate = 1`)
or over HTTP (`PUT /_sim/config`), and every decision reads it at the moment it is made, so a knob takes
effect on the next request without a restart. Rates and the concurrency limit take either one value for
all providers or a per-provider mapping (`{"kling": 1.0}`), which is what failover tests need: one
provider broken, the others healthy.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ProviderKey = Literal["kling", "evolink", "kling3api"]
PROVIDERS: tuple[ProviderKey, ...] = ("kling", "evolink", "kling3api")

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Rate = Probability | dict[ProviderKey, Probability]
Limit = Annotated[int, Field(ge=0)]


class SimConfig(BaseModel):
    """Every fault knob, with defaults that make a well-behaved, fast provider."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    generation_time_s: float = Field(default=3.0, ge=0, description="create → final state")
    failure_rate: Rate = Field(default=0.0, description="share of tasks that end failed")
    callback_drop_rate: Rate = Field(default=0.0, description="share of callbacks never sent")
    callback_duplicate_rate: Rate = Field(default=0.0, description="share of callbacks sent twice")
    callback_delay_s: float = Field(default=0.0, ge=0, description="delay before each callback")
    callback_out_of_order: bool = Field(
        default=False, description="final callback first, then a stale 'processing' one"
    )
    callback_retry_backoff_s: float = Field(default=0.5, ge=0, description="EvoLink retry backoff base")
    error_5xx_rate: Rate = Field(default=0.0, description="share of create/query answered 5xx")
    error_429_rate: Rate = Field(default=0.0, description="share of create/query answered 429")
    concurrency_limit: Limit | dict[str, Limit] | None = Field(
        default=None,
        description="tasks in flight per provider account before creates get 1303/429; a mapping is keyed "
        "by provider or by 'provider/account' (the account's own limit wins)",
    )
    create_lost_response_count: int = Field(
        default=0, ge=0, description="next N creates are performed but answered HTTP 500"
    )
    download_fail_after_bytes: int | None = Field(
        default=None, ge=0, description="cut download connections after this many body bytes"
    )
    download_fail_count: int | None = Field(
        default=None, ge=0, description="how many downloads to cut (None: all while the knob is set)"
    )
    link_ttl_s: float = Field(default=86400.0, gt=0, description="download links expire after this")
    output_pad_to_bytes: int | None = Field(
        default=None, ge=0, description="pad outputs to this size with a streamed MP4 'free' box"
    )
    seed: int | None = Field(default=None, description="seed of the fault RNG (None: random)")

    def rate(self, name: str, provider: str) -> float:
        """The probability knob `name` as it applies to `provider`."""
        value: float | dict[str, float] = getattr(self, name)
        if isinstance(value, dict):
            return float(value.get(provider, 0.0))
        return float(value)

    @field_validator("concurrency_limit")
    @classmethod
    def _limit_keys(cls, value: int | dict[str, int] | None) -> int | dict[str, int] | None:
        for key in value if isinstance(value, dict) else ():
            if key.partition("/")[0] not in PROVIDERS:
                raise ValueError(f"{key!r}: keys are a provider or 'provider/account'")
        return value

    def limit_for(self, provider: str, account: str | None = None) -> int | None:
        """The knob's concurrency limit of one account of `provider` (None: the knob does not limit it)."""
        limit = self.concurrency_limit
        if isinstance(limit, dict):
            if account is not None and f"{provider}/{account}" in limit:
                return limit[f"{provider}/{account}"]
            return limit.get(provider)
        return limit


class SimAccount(BaseModel):
    """One account at a simulated provider: its credentials and its parallel-task limit.

    `key` is Kling's access key or a gateway's API key; `secret` is Kling's secret key. `concurrency` is
    enforced by the simulator (unless the `concurrency_limit` knob names the account) and is what
    `provider_env` tells the pipeline; None: unlimited, and the pipeline's default.
    """

    model_config = ConfigDict(frozen=True)

    provider: ProviderKey
    name: str = "default"
    key: str
    secret: str | None = None
    concurrency: int | None = Field(default=None, ge=1)


class SimCredentials(BaseModel):
    """The keys the simulator accepts; the defaults are what `kling-pipeline simulate` prints.

    The single keys make one account named "default" per provider; `accounts` replaces them for each
    provider it names (several accounts, each with its own tasks and limit).
    """

    model_config = ConfigDict(frozen=True)

    kling_access_key: str = "sim-access-key"
    kling_secret_key: str = "sim-secret-key-local-simulator-only"  # noqa: S105 (public simulator default)
    evolink_api_key: str = "sim-evolink-key"
    kling3api_api_key: str = "sim-kling3api-key"
    accounts: tuple[SimAccount, ...] = ()

    def accounts_for(self, provider: str) -> list[SimAccount]:
        """The accounts of `provider`: the listed ones, else "default" from the single keys."""
        listed = [account for account in self.accounts if account.provider == provider]
        if listed:
            return listed
        if provider == "kling":
            return [SimAccount(provider="kling", key=self.kling_access_key, secret=self.kling_secret_key)]
        key = self.evolink_api_key if provider == "evolink" else self.kling3api_api_key
        return [SimAccount(provider=provider, key=key)]  # type: ignore[arg-type]

    def provider_env(self, base_url: str) -> dict[str, str]:
        """Environment variables (DESIGN.md §7 names) that point the pipeline's adapters at the simulator:
        the single keys, or `<PROVIDER>_ACCOUNTS` for a provider with listed accounts."""
        env = {
            "KLING_API_BASE_URL": base_url,
            "EVOLINK_API_BASE_URL": base_url,
            "KLING3API_BASE_URL": base_url,
        }
        singles = {
            "kling": {"KLING_ACCESS_KEY": self.kling_access_key, "KLING_SECRET_KEY": self.kling_secret_key},
            "evolink": {"EVOLINK_API_KEY": self.evolink_api_key},
            "kling3api": {"KLING3API_API_KEY": self.kling3api_api_key},
        }
        for provider in PROVIDERS:
            listed = [account for account in self.accounts if account.provider == provider]
            if not listed:
                env.update(singles[provider])
                continue
            env[f"{provider.upper()}_ACCOUNTS"] = json.dumps([_pipeline_account(a) for a in listed])
        return env


def _pipeline_account(account: SimAccount) -> dict[str, object]:
    """An entry of the pipeline's `*_ACCOUNTS` list for a simulated account."""
    entry: dict[str, object] = {"name": account.name}
    if account.provider == "kling":
        entry.update(access_key=account.key, secret_key=account.secret)
    else:
        entry["api_key"] = account.key
    if account.concurrency is not None:
        entry["concurrency"] = account.concurrency
    return entry
