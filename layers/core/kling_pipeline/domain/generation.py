"""The generation resource (DESIGN.md §4): what we store, what the API returns, what events carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from kling_pipeline import clock
from kling_pipeline.domain.money import ZERO, ActualCost, Amount, EstimatedCost
from kling_pipeline.domain.request import GenerationRequest, Mode, Model
from kling_pipeline.domain.status import Status

utcnow = clock.utcnow  # the domain's clock (kling_pipeline.clock), under the name its users import


def rfc3339(moment: datetime) -> str:
    """The one time format users see (API, webhooks, events, files): RFC 3339 in UTC with a `Z`, exactly
    as pydantic writes our models' datetimes, so a webhook and the API never disagree on a timestamp."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Output(BaseModel):
    """A finished video in our bucket; `url` is a fresh presigned GET added when the resource is served."""

    s3_uri: str
    bucket: str
    key: str
    url: str | None = None
    bytes: int
    sha256: str
    content_type: str = "video/mp4"
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None


class GenerationError(BaseModel):
    code: str
    message: str


class Generation(BaseModel):
    id: str
    tenant_id: str
    status: Status
    mode: Mode
    model: Model
    provider: str | None = None
    account: str | None = None  # the provider account the task runs on (its credentials, its slot)
    provider_task_id: str | None = None
    created_at: datetime
    updated_at: datetime
    progress: int | None = None
    request: GenerationRequest
    # Queued only, computed when served (services/capacity.queue_info): 1 = next to start.
    queue_position: int | None = None
    estimated_start_at: datetime | None = None
    estimated_cost: EstimatedCost | None = None
    actual_cost: ActualCost | None = None
    outputs: list[Output] = Field(default_factory=list)
    error: GenerationError | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    source: str = "api"
    submit_attempts: int = 0
    deadline_at: datetime | None = None
    # Set once the terminal event is on the bus; a terminal generation without it is announced again.
    announced: bool = False
    # Who is publishing the terminal event right now: others leave it alone until this passes (a crash).
    announce_claimed_until: datetime | None = None
    # Who is handing the queued generation to a provider right now (the create itself, then the submit
    # queue's retries): nobody else submits it until this passes, so two submits never pay twice.
    submit_lease_until: datetime | None = None
    # A create went to this provider and its answer was lost: a task of ours may exist there, so the
    # generation never goes to another provider (docs/providers.md "Lost create answers").
    unconfirmed_provider: str | None = None
    # What the create reserved of the tenant's monthly budget; settled to the actual cost at the end.
    reserved_usd: Amount = ZERO
    submitted_at: datetime | None = None  # when the provider accepted the task (observed task times)
    slot: int | None = None  # which of its account's slots the task holds: freed in one write, no lookup
    slot_released: bool = False  # the final write freed that slot itself: nobody needs to look again

    def public(self) -> dict[str, Any]:
        """The JSON body users see (tenant and internal bookkeeping left out)."""
        return self.model_dump(mode="json", exclude=_INTERNAL_FIELDS)


_INTERNAL_FIELDS = {
    "tenant_id",
    "submit_attempts",
    "deadline_at",
    "announced",
    "announce_claimed_until",
    "submit_lease_until",
    "unconfirmed_provider",
    "reserved_usd",
    "submitted_at",
    "slot",
    "slot_released",
}


class GenerationPage(BaseModel):
    items: list[Generation]
    next_cursor: str | None = None
