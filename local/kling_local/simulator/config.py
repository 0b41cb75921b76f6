"""Fault knobs and credentials of the provider simulator.

`SimConfig` is one live object per server: tests change it in-process (`server.config.failure_rate = 1`)
or over HTTP (`PUT /_sim/config`), and every decision reads it at the moment it is made, so a knob takes
effect on the next request without a restart. Rates and the concurrency limit take either one value for
all providers or a per-provider mapping (`{"kling": 1.0}`), which is what failover tests need: one
provider broken, the others healthy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    concurrency_limit: Limit | dict[ProviderKey, Limit] | None = Field(
        default=None, description="tasks in flight per provider account before creates get 429"
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

    def limit_for(self, provider: str) -> int | None:
        """The concurrency limit of `provider`'s account, None when unlimited."""
        limit = self.concurrency_limit
        if isinstance(limit, dict):
            return limit.get(provider)  # type: ignore[call-overload, no-any-return]
        return limit


class SimCredentials(BaseModel):
    """The keys the simulator accepts; the defaults are what `kling-pipeline simulate` prints."""

    model_config = ConfigDict(frozen=True)

    kling_access_key: str = "sim-access-key"
    kling_secret_key: str = "sim-secret-key-local-simulator-only"  # noqa: S105 (public simulator default)
    evolink_api_key: str = "sim-evolink-key"
    kling3api_api_key: str = "sim-kling3api-key"

    def provider_env(self, base_url: str) -> dict[str, str]:
        """Environment variables (DESIGN.md §7 names) that point the pipeline's adapters at the simulator."""
        return {
            "KLING_API_BASE_URL": base_url,
            "KLING_ACCESS_KEY": self.kling_access_key,
            "KLING_SECRET_KEY": self.kling_secret_key,
            "EVOLINK_API_BASE_URL": base_url,
            "EVOLINK_API_KEY": self.evolink_api_key,
            "KLING3API_BASE_URL": base_url,
            "KLING3API_API_KEY": self.kling3api_api_key,
        }
