"""What every provider adapter offers, in our terms; adapters translate to and from the wire formats."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from kling_pipeline.domain.element import ProviderElementStatus
from kling_pipeline.domain.request import GenerationRequest, ProviderName
from kling_pipeline.domain.status import Status

__all__ = [
    "ElementSpec",
    "LostCreate",
    "Provider",
    "ProviderElement",
    "ProviderName",
    "ProviderTask",
    "TaskCost",
    "TaskError",
    "TaskOutput",
]


LostCreate = Literal["lookup", "callback", "none"]


class TaskError(BaseModel):
    """Why a task failed, in our codes (content_policy, bad_request, provider_error, timeout, ...)."""

    code: str
    message: str
    provider_code: str | None = None


class TaskOutput(BaseModel):
    """A finished video at the provider: a download link that expires (24 h for the gateways)."""

    url: str
    duration_s: float | None = None


class TaskCost(BaseModel):
    usd: Decimal | None = None
    credits: Decimal | None = None


class ProviderTask(BaseModel):
    """A provider's task as we understand it, whatever the wire format said."""

    provider: ProviderName
    task_id: str
    status: Status  # submitted | processing | succeeded | failed (never queued/canceled from a provider)
    progress: int | None = Field(default=None, ge=0, le=100)
    outputs: list[TaskOutput] = Field(default_factory=list)
    error: TaskError | None = None
    cost: TaskCost | None = None
    external_task_id: str | None = None


class ElementSpec(BaseModel):
    """A custom element (subject) to create at a provider: a frontal image plus reference images."""

    name: str
    description: str | None = None
    frontal_image: str
    reference_images: list[str] = Field(default_factory=list)


class ProviderElement(BaseModel):
    provider: ProviderName
    element_id: str | None  # known once the provider has created it
    task_id: str | None = None
    status: ProviderElementStatus
    error: TaskError | None = None


class Provider(Protocol):
    """One provider account. Methods raise `kling_pipeline.errors.ProviderError` with a `kind`."""

    name: ProviderName
    supports_callbacks: bool
    supports_cancel: bool
    # What can be learnt after a create whose answer was lost (docs/providers.md "Lost create answers"):
    # "lookup" by our external id, "callback" (the task calls our per-generation URL back), or "none".
    lost_create: LostCreate

    def unsupported_reason(self, request: GenerationRequest) -> str | None:
        """None when this provider can run the request; else a short human reason."""

    def build_submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) exactly as the provider's wire format wants it. Pure."""

    def submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> ProviderTask:
        """Create the task. When the answer was lost, looks the task up by external id before resubmitting."""

    def query(self, task_id: str) -> ProviderTask: ...

    def find_by_external_id(
        self, external_task_id: str, request: GenerationRequest | None = None
    ) -> ProviderTask | None:
        """The task we created with this external id, or None (also when the provider cannot look it up).
        `request` (the one submitted) lets a provider ask only the endpoint it went to."""

    def cancel(self, task_id: str) -> bool:
        """True when the provider cancelled the task; False when it has no cancel."""

    def parse_callback(self, body: dict[str, Any]) -> str | None:
        """The provider task id named by a callback body (never trusted for anything else)."""

    def create_element(self, spec: ElementSpec, *, external_id: str) -> ProviderElement: ...

    def get_element(self, element: ProviderElement) -> ProviderElement: ...

    def delete_element(self, element: ProviderElement) -> None: ...
