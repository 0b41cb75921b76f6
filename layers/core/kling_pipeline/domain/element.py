"""Custom elements (DESIGN.md §2, §4): a subject — one frontal image plus reference images — that we
create at every enabled provider offering elements and that generations reference by our id (`elm_…`).

Create body limits. Seed 003 lists "General - Create Element" but its text stops before the body, and
seed 001 only names the `kling-custom-element` model, so these are **assumed** from the public Kling
element API (docs/providers.md "Custom elements"):

- `name` 1-20 characters, `description` at most 100 (providers get the name when it is omitted);
- `frontal_image` required, `reference_images` 1-3, each `https://` or `s3://bucket/key`, JPG/JPEG/PNG
  (rule 5 is checked on the bytes for `s3://` inputs, like generation inputs).

Only multi-image elements (Kling `reference_type: image_refer`) are created: EvoLink's kling-custom-element
offers nothing else and they are the kind every mode accepts, so rule 7's "no video-character elements
with a video input" holds by construction.

Lifecycle: each provider creates the element asynchronously (submitted → processing → ready | failed).
Ours is `ready` as soon as one provider is ready (`ready_providers` says where it can be used),
`failed` when every provider failed, else `processing`; `deleted` is internal (a deleted element answers
404 like one that never existed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kling_pipeline.domain.request import ImageUrl
from kling_pipeline.domain.validation import invalid_input, issues_from_validation_error

NAME_MAX_CHARS = 20
DESCRIPTION_MAX_CHARS = 100
MIN_REFERENCE_IMAGES = 1
MAX_REFERENCE_IMAGES = 3

ProviderElementStatus = Literal["submitted", "processing", "ready", "failed"]
TERMINAL_AT_PROVIDER: frozenset[str] = frozenset({"ready", "failed"})


class ElementStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"  # internal: never served


class ElementCreateRequest(BaseModel):
    """`POST /v1/elements` body."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=NAME_MAX_CHARS, description="Shown at the provider.")
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_CHARS)
    frontal_image: ImageUrl = Field(
        description="https:// or s3://bucket/key; the subject seen from the front."
    )
    reference_images: list[ImageUrl] = Field(
        min_length=MIN_REFERENCE_IMAGES,
        max_length=MAX_REFERENCE_IMAGES,
        description="1-3 more views of the subject (https:// or s3://bucket/key).",
    )


def parse_element_request(body: Mapping[str, Any]) -> ElementCreateRequest:
    """Validate a create body; raises `InvalidInput` listing every problem on the field a user wrote."""
    try:
        return ElementCreateRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_input(issues_from_validation_error(exc)) from None


class ElementError(BaseModel):
    code: str
    message: str


class ElementAtProvider(BaseModel):
    """Our element at one provider: its creation task and, once ready, the provider's own element id."""

    status: ProviderElementStatus
    element_id: str | None = None
    task_id: str | None = None
    error: ElementError | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_AT_PROVIDER

    @property
    def ready(self) -> bool:
        return self.status == "ready" and self.element_id is not None


class Element(BaseModel):
    id: str
    tenant_id: str  # stored in the document; left out of `public()`
    status: ElementStatus
    name: str
    description: str | None = None
    frontal_image: str
    reference_images: list[str]
    providers: dict[str, ElementAtProvider] = Field(default_factory=dict)
    error: ElementError | None = None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def ready_providers(self) -> list[str]:
        return [name for name, record in self.providers.items() if record.ready]

    @property
    def settled(self) -> bool:
        """True when no provider is still working on it (nothing left to refresh)."""
        return all(record.terminal for record in self.providers.values())

    def with_providers(self, providers: Mapping[str, ElementAtProvider]) -> Element:
        """A copy with these provider records and the status and error they imply."""
        merged = {**self.providers, **providers}
        status = derive_status(merged)
        error = failure_summary(merged) if status is ElementStatus.FAILED else None
        return self.model_copy(update={"providers": merged, "status": status, "error": error})

    def public(self) -> dict[str, Any]:
        """The JSON body users see: no tenant, no internal bookkeeping."""
        body = self.model_dump(mode="json", exclude={"tenant_id", "deleted_at"})
        body["ready_providers"] = self.ready_providers
        return body


def derive_status(providers: Mapping[str, ElementAtProvider]) -> ElementStatus:
    """Ready as soon as one provider is; failed when all did; processing otherwise (also with none yet)."""
    records = list(providers.values())
    if any(record.ready for record in records):
        return ElementStatus.READY
    if records and all(record.status == "failed" for record in records):
        return ElementStatus.FAILED
    return ElementStatus.PROCESSING


def failure_summary(providers: Mapping[str, ElementAtProvider]) -> ElementError:
    """One error for an element that failed everywhere: the first provider's code, every message."""
    failed = [(name, record.error) for name, record in providers.items() if record.error is not None]
    if not failed:
        return ElementError(code="provider_error", message="element creation failed")
    code = failed[0][1].code
    message = "; ".join(f"{name}: {error.message}" for name, error in failed)
    return ElementError(code=code, message=message)


class ElementPage(BaseModel):
    items: list[Element]
    next_cursor: str | None = None
