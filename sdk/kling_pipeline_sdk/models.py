"""Typed resources of the API (mirrors `/openapi.json`).

Every model accepts fields it does not know yet (`extra="allow"`), so a newer server never breaks an
older client; known fields are typed, times are aware `datetime`s, money is `Decimal`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["queued", "submitted", "processing", "succeeded", "failed", "canceled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Cost(_Model):
    """`estimated_cost` ({usd, provider}) or `actual_cost` ({usd, units, unit, basis}); amounts are exact."""

    usd: Decimal | None = None
    provider: str | None = None
    units: Decimal | None = None
    unit: str | None = None
    basis: str | None = None


class Output(_Model):
    s3_uri: str
    url: str | None = None
    bytes: int
    sha256: str
    content_type: str = "video/mp4"
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None


class Problem(_Model):
    code: str
    message: str


class Generation(_Model):
    id: str
    status: Status
    mode: str
    model: str
    provider: str | None = None
    provider_task_id: str | None = None
    created_at: datetime
    updated_at: datetime
    progress: int | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    queue_position: int | None = None
    estimated_start_at: datetime | None = None
    estimated_cost: Cost | None = None
    actual_cost: Cost | None = None
    outputs: list[Output] = Field(default_factory=list)
    error: Problem | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True once the status is final (succeeded, failed or canceled)."""
        return self.status in TERMINAL


class Quote(_Model):
    provider: str
    supported: bool
    reason: str | None = None
    usd: Decimal | None = None
    credits: Decimal | None = None
    billed_seconds: int | None = None
    note: str | None = None


class Estimate(_Model):
    quotes: list[Quote]
    chosen: str | None = None
    note: str | None = None

    @property
    def chosen_quote(self) -> Quote | None:
        return next((quote for quote in self.quotes if quote.provider == self.chosen), None)


class Element(_Model):
    id: str
    status: str
    name: str
    description: str | None = None
    frontal_image: str
    reference_images: list[str] = Field(default_factory=list)
    ready_providers: list[str] = Field(default_factory=list)
    error: Problem | None = None
    created_at: datetime
    updated_at: datetime


class Delivery(_Model):
    webhook_id: str
    event_type: str
    sequence: int
    attempt: int
    attempted_at: datetime
    url: str
    outcome: str
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    next_retry_at: datetime | None = None
    dead_lettered: bool = False


class Redelivery(_Model):
    webhook_id: str
    sequence: int
    status: str


class UploadTicket(_Model):
    url: str
    fields: dict[str, str]
    s3_uri: str
    content_type: str
    max_bytes: int
    expires_at: datetime


class Usage(_Model):
    """`GET /v1/usage` (DESIGN.md §4): the month's budget, spend, reservations and breakdowns."""

    month: str | None = None
    budget_usd: Decimal | None = None
    spent_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    counts: dict[str, Any] = Field(default_factory=dict)
    by_provider: dict[str, Any] = Field(default_factory=dict)
    by_mode: dict[str, Any] = Field(default_factory=dict)


class WebhookEvent(_Model):
    """A verified webhook: `type` (`generation.succeeded`, …), `timestamp` and the generation in `data`."""

    type: str
    timestamp: datetime
    data: dict[str, Any]
