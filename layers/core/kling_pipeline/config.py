"""Typed configuration from the environment (same names locally and in Lambda), built once on first use.

A pydantic model fed the environment's variables by name (case-insensitive, empty ones ignored), rather
than pydantic-settings: importing that library costs every cold start ~100 ms (a third of a handler's
floor) for a mapping of variable names to fields that takes a few lines here; validation is pydantic's.

Secrets are referenced by name: when `PROVIDER_SECRET_NAME`, `SIGNING_SECRET_NAME` or `WEBHOOK_SECRET_NAME`
is set, the keys of its JSON value that this secret may set (`SECRET_KEYS`) override the plain environment,
so a deployed stack keeps keys in Secrets Manager while a developer can still export `KLING_ACCESS_KEY`
locally. Settings fed by secrets are rebuilt after `SECRET_MAX_AGE_S`, so a rotation needs no cold start.
`LOCAL_ALLOW_*` switches are refused inside Lambda.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kling_pipeline.accounts import DEFAULT_CONCURRENCY, KeyAccount, KlingAccount, json_list, unique_names

_SECRET_MAX_AGE_S = 300
# 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight tries over ≈ 27 h.
_WEBHOOK_RETRY_SCHEDULE_S = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


class Settings(BaseModel):
    """Every field from the variable of its name (any case; empty means unset); keyword arguments win."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_environment(type(self).model_fields), **values})

    # Providers: a provider is enabled when its credentials are present.
    kling_api_base_url: str = "https://api-singapore.klingai.com"
    kling_access_key: SecretStr | None = None
    kling_secret_key: SecretStr | None = None
    evolink_api_base_url: str = "https://api.evolink.ai"
    evolink_api_key: SecretStr | None = None
    kling3api_base_url: str = "https://kling3api.com"
    kling3api_api_key: SecretStr | None = None
    # Several accounts per provider (JSON lists; kling_pipeline/accounts.py); the single keys above are
    # the shorthand for one account named "default" with DEFAULT_ACCOUNT_CONCURRENCY slots.
    kling_accounts: list[KlingAccount] | None = None
    evolink_accounts: list[KeyAccount] | None = None
    kling3api_accounts: list[KeyAccount] | None = None
    default_account_concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=1000)
    # USD value of one kling3api credit (the seed prices in credits only); used to rank providers.
    kling3api_usd_per_credit: float | None = None
    # USD value of one Kling resource-pack unit (`final_unit_deduction`); unset: pricing.json's rate.
    kling_usd_per_unit: float | None = None

    # Every tenant's monthly spend cap in USD (per-tenant overrides in DynamoDB); unset: unlimited.
    tenant_monthly_budget_usd: Decimal | None = Field(default=None, ge=0)

    # Secrets Manager names (deployed stacks); JSON objects whose keys are the variable names above.
    provider_secret_name: str | None = None
    signing_secret_name: str | None = None
    webhook_secret_name: str | None = None
    callback_signing_secret: SecretStr | None = None
    webhook_signing_secret: SecretStr | None = None

    # Where providers reach our callback route (API Gateway stage URL or the local front door).
    public_base_url: str | None = None

    # Fallback timing (seconds) and the deadline after which a generation fails with `timeout`.
    fallback_first_poll_s: int = Field(default=60, ge=1)
    fallback_max_interval_s: int = Field(default=600, ge=1)
    task_deadline_s: int = Field(default=7200, ge=1)
    # How long an ingest holds its generation; a crashed holder blocks re-ingest for this long.
    ingest_lease_s: int = Field(default=900, ge=1)
    # How long one submit may take (failover across every provider); a create's safety net and the submit
    # queue's retries leave a queued generation to its submitter for this long (a crash: until it passes).
    submit_lease_s: int = Field(default=120, ge=1)
    # How long a claimed announcement is left to its publisher (an EventBridge PutEvents plus an SQS send).
    announce_claim_s: int = Field(default=60, ge=1)

    # Resources (set by template.yaml or the local stack).
    aws_region: str = "us-east-1"
    generations_table: str = "kling-generations"
    idempotency_table: str = "kling-idempotency"
    bucket_name: str = "kling-pipeline-media"
    event_bus_name: str = "kling-pipeline"
    ingest_queue_url: str | None = None
    submit_queue_url: str | None = None
    webhook_queue_url: str | None = None
    webhook_dlq_url: str | None = None
    state_machine_arn: str | None = None

    # Local stack only (its front door reads LOCAL_API_KEYS itself).
    local_allow_private_webhooks: bool = False
    local_allow_http_loopback: bool = False

    # Admission control (services/capacity.py): a slot's lease outlives the longest task (unset: the
    # deadline + 10 min), so only a crashed holder ever loses one; an account refusing a create at its
    # limit anyway is backed off from ACCOUNT_BACKOFF_S (doubling per refusal, at most 10 min).
    slot_lease_s: int | None = Field(default=None, ge=1)
    account_backoff_s: float = Field(default=30.0, gt=0)

    # Generations waiting for provider capacity are retried from the submit queue with this backoff.
    submit_retry_base_s: int = Field(default=15, ge=1)
    submit_retry_max_s: int = Field(default=900, ge=1, le=900)

    # End-user webhook retry schedule: seconds before each try (≈ a day in all, jitter added); then the DLQ.
    # `WEBHOOK_RETRY_SCHEDULE_S=0,1,1,1` in the environment (comma-separated, not JSON).
    webhook_retry_schedule_s: tuple[int, ...] = _WEBHOOK_RETRY_SCHEDULE_S

    # Keeps a submit with its retries inside API Gateway's 29 s integration timeout.
    http_timeout_s: float = 8.0
    # Probing https:// inputs before anything is spent: time and bytes one request may use for all its inputs.
    input_probe_timeout_s: float = Field(default=10.0, gt=0, le=25)
    input_probe_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
    # Largest provider output we download (bytes); a larger file fails the generation as `invalid_output`.
    max_output_bytes: int = Field(default=2 * 1024**3, ge=1024)
    presign_ttl_s: int = 3600

    # S3 uploads and "Generation Requested" events (docs/integrations.md).
    # Tenant of trigger-created generations; `UPLOAD_TENANTS` maps key prefixes to tenants
    # ("uploads/team-a/=tenant-a,uploads/=uploads"; longest prefix wins) and falls back to this.
    upload_tenant_id: str = "uploads"
    upload_tenants: str | None = None
    # Job-spec defaults when neither a sidecar, object metadata nor the event says.
    default_quality: str = "720p"
    default_duration_s: int = Field(default=5, ge=3, le=15)
    default_prompt: str = "Animate this image naturally"
    default_video_prompt: str | None = None  # unset: a video upload must bring its own prompt
    # How long a media upload without a job spec waits for its sidecar before running with defaults.
    upload_sidecar_grace_s: int = Field(default=30, ge=0, le=900)
    uploads_queue_url: str | None = None
    # "Generation Requested" events: the only `source`s accepted ("a.b,c.d"; the template's rule filters on
    # the same list), and the tenant each source acts for ("a.b=tenant-a"; unmapped: UPLOAD_TENANT_ID).
    # An event never chooses its tenant: `tenant_id` in the detail must agree with its source's tenant.
    event_sources: str | None = None
    event_source_tenants: str | None = None

    @field_validator("kling_accounts", "evolink_accounts", "kling3api_accounts", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        return json_list(value)

    @field_validator("kling_accounts", "evolink_accounts", "kling3api_accounts")
    @classmethod
    def _unique(cls, value: list[Any] | None) -> list[Any] | None:
        return unique_names(value)

    @field_validator("webhook_retry_schedule_s", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(int(item) for item in value.split(",") if item.strip())
        return value

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _non_empty_non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) < 0:
            raise ValueError("needs at least one delay, none negative")
        return value


def _environment(fields: Mapping[str, Any]) -> dict[str, str]:
    """The variables named like `fields` (case-insensitive), empty ones left out."""
    return {
        name: value for key, value in os.environ.items() if value != "" and (name := key.lower()) in fields
    }


def key_value_pairs(text: str | None) -> dict[str, str]:
    """`"a=1,b=2"` → `{"a": "1", "b": "2"}` (the shape of UPLOAD_TENANTS and EVENT_SOURCE_TENANTS);
    items without both sides are skipped."""
    pairs: dict[str, str] = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip() and value.strip():
            pairs[key.strip()] = value.strip()
    return pairs


# Which settings each secret may carry: anything else in a secret is ignored (and logged), so write access to
# one secret never reaches another secret's key, a base URL or a local-only switch.
SECRET_KEYS: dict[str, frozenset[str]] = {
    "provider_secret_name": frozenset(
        {
            "kling_access_key",
            "kling_secret_key",
            "evolink_api_key",
            "kling3api_api_key",
            "kling_accounts",
            "evolink_accounts",
            "kling3api_accounts",
        }
    ),
    "signing_secret_name": frozenset({"callback_signing_secret"}),
    "webhook_secret_name": frozenset({"webhook_signing_secret"}),
}
# How long settings built from secrets are kept before the secrets are read again (rotation without a
# cold start); plain-environment settings never change in a process and are kept for good.
SECRET_MAX_AGE_S = _SECRET_MAX_AGE_S
_LOCAL_ONLY = ("local_allow_private_webhooks", "local_allow_http_loopback")


class _SettingsCache:
    """The one built Settings of this process, when it was built, and a version bumped on every change."""

    settings: Settings | None = None
    built_at = 0.0
    version = 0


_cache = _SettingsCache()


def _monotonic() -> float:
    return time.monotonic()


def _secret_values(setting: str, name: str, *, region: str) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from kling_pipeline import aws
    from kling_pipeline.observability import logger

    # The client comes from the process's one boto3 session: Powertools' default provider would open a
    # session of its own, and loading botocore's data again cost ~40 ms of CPU of the first invocation.
    # We are the cache (SECRET_MAX_AGE_S): when we ask, we want the current value, not Powertools' copy.
    raw = SecretsProvider(boto3_client=aws.secretsmanager(region)).get(name, force_fetch=True)
    if raw is None:
        raise RuntimeError(f"secret {name} has no value")
    value = json.loads(raw) if isinstance(raw, str) else json.loads(bytes(raw).decode())
    allowed = SECRET_KEYS[setting]
    values = {key.lower(): val for key, val in value.items() if val not in (None, "")}
    if ignored := sorted(key for key in values if key not in allowed):
        logger.warning("secret carries keys it may not set; ignored", extra={"secret": name, "keys": ignored})
    return {key: val for key, val in values.items() if key in allowed}


def _build() -> Settings:
    settings = Settings()
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        switched_on = [name.upper() for name in _LOCAL_ONLY if getattr(settings, name)]
        if switched_on:
            raise RuntimeError(f"{', '.join(switched_on)} is for the local stack only; refused inside Lambda")
    overrides: dict[str, Any] = {}
    for setting in SECRET_KEYS:
        if name := getattr(settings, setting):
            overrides.update(_secret_values(setting, name, region=settings.aws_region))
    if overrides:
        settings = Settings(**{**settings.model_dump(exclude_unset=True), **overrides})
    return settings


def get_settings() -> Settings:
    """The settings, built on first use; when secrets feed them, rebuilt once `SECRET_MAX_AGE_S` has passed
    (a rotated key is used within minutes, without a cold start)."""
    now = _monotonic()
    settings = _cache.settings
    if settings is not None:
        uses_secrets = any(getattr(settings, setting) for setting in SECRET_KEYS)
        if not uses_secrets or now - _cache.built_at < SECRET_MAX_AGE_S:
            return settings
    fresh = _build()
    if fresh != settings:
        _cache.version += 1
    _cache.settings, _cache.built_at = fresh, now
    return fresh


def settings_version() -> int:
    """Changes whenever `get_settings()` starts returning different values: objects built from settings
    (provider clients holding keys) key their caches on it."""
    get_settings()
    return _cache.version


def reset_settings() -> None:
    """Forget the cached settings (tests and the local stack change the environment)."""
    _cache.settings = None
    _cache.version += 1
