"""The HTTP contract: response models and the status codes each route documents (DESIGN.md §4).

Routes declare these models as their return type, so Powertools serialises every answer through them and
`/openapi.json` describes exactly what is sent. Error answers of every route share `ErrorResponse`
(`{"error": {"code", "message", "details"}}`), the body `kling_pipeline.api_errors` writes; the
framework's own `{"detail": [...]}` schema never appears. `responses(...)` builds a route's `responses=`
from the status codes it can answer, so a new route lists its errors in one line.

Resources allow fields this module does not name yet (`extra="allow"`): the stored records grow (costs,
capacity, sources) and a field added there must reach users even before it is documented here.
"""

from __future__ import annotations

import json
from datetime import datetime
from http import HTTPStatus
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from pydantic import BaseModel, ConfigDict, Field

from kling_pipeline.domain.element import ElementStatus
from kling_pipeline.domain.money import ActualCost, Amount, EstimatedCost
from kling_pipeline.domain.request import Mode, Model
from kling_pipeline.domain.status import Status

EXAMPLE_TIME = "2026-01-15T09:30:00.125000Z"
TIME_DESCRIPTION = "RFC 3339, UTC, `Z` suffix."


# ---- errors -----------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    field: str = Field(description="The field as written in the request, e.g. `shots[1].duration`.")
    issue: str


class BudgetDetails(BaseModel):
    """The figures behind a `budget_exceeded` (402): amounts are USD strings with four places."""

    month: str
    budget_usd: str
    spent_usd: str
    reserved_usd: str
    estimate_usd: str


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `validation_error`, `not_found`.")
    message: str
    details: list[ErrorDetail] | BudgetDetails | None = Field(
        default=None, description="One entry per invalid field; the budget's figures for `budget_exceeded`."
    )
    request_id: str | None = Field(default=None, description="Quote it to support (5xx only).")


class ErrorResponse(BaseModel):
    """Every non-2xx answer of the API."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "error": {
                    "code": "validation_error",
                    "message": "the request is invalid",
                    "details": [{"field": "shots[1].duration", "issue": "must be at least 1"}],
                }
            }
        }
    )

    error: ErrorInfo


_ERROR_TEXT: dict[int, str] = {
    400: "The body is not valid JSON (`invalid_json`).",
    401: "No tenant could be resolved from the request (`unauthorized`).",
    402: "The tenant's monthly budget would be exceeded (`budget_exceeded`).",
    403: "Missing or unknown `x-api-key` (`forbidden`).",
    404: "No such resource for this tenant (`not_found`); another tenant's id answers the same.",
    409: "Conflicts with the resource's state or an earlier use of the `Idempotency-Key` (`conflict`).",
    413: "The body is over 1 MiB (`payload_too_large`).",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    422: "A field is invalid (`validation_error`); `details` names each field.",
    429: "Too many requests (`rate_limited`); retry after the `Retry-After` header when present.",
    500: "Unexpected failure (`internal_error`); the body carries only a `request_id`.",
    502: "The provider could not process the request (`provider_error`).",
    503: "Temporarily unavailable; retry later.",
}

# What any /v1 route can answer, whatever it does: API Gateway's key check and throttling, a bad
# parameter, and a bug. 422 is listed everywhere so the framework's own 422 schema is never used.
COMMON_ERRORS = (401, 403, 422, 429, 500)
# What a route that reads a JSON body can answer on top.
BODY_ERRORS = (400, 413, 415, 422)


def responses(
    success: int, description: str, *errors: int, headers: dict[str, Any] | None = None
) -> dict[int, Any]:
    """`responses=` for a route: its success answer (the return annotation's model) and its errors."""
    ok: dict[str, Any] = {"description": description}
    if headers:
        ok["headers"] = headers
    if success == HTTPStatus.NO_CONTENT:
        ok["content"] = {}
    table: dict[int, Any] = {success: ok}
    for status in sorted({*COMMON_ERRORS, *errors}):
        table[status] = {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"model": ErrorResponse}},
        }
    return table


def openapi_document(generated: str) -> str:
    """The generated document with the framework's error schemas replaced by ours.

    Routes document their errors with `ErrorResponse`, but Powertools still writes its own
    `ResponseValidationError` over every 500 (we answer those with our body, see `api_errors`) and
    defines `{"detail": [...]}` schemas no route uses; both would mislead a generated client.
    """
    document = json.loads(generated)
    ours = {"$ref": "#/components/schemas/ErrorResponse"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref", "").rpartition("/")[2] in _FRAMEWORK_SCHEMAS:
                    answer["description"] = _ERROR_TEXT.get(int(status), answer.get("description", ""))
                    answer["content"] = {"application/json": {"schema": ours}}
    schemas = document.get("components", {}).get("schemas", {})
    for name in _FRAMEWORK_SCHEMAS:
        schemas.pop(name, None)
    return json.dumps(document)


_FRAMEWORK_SCHEMAS = frozenset({"HTTPValidationError", "ValidationError", "ResponseValidationError"})

REPLAY_HEADERS = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same "
        "`Idempotency-Key` (nothing new was created).",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


# ---- generations ------------------------------------------------------------------------------------


class OutputOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    s3_uri: str
    bucket: str
    key: str
    url: str | None = Field(default=None, description="A fresh presigned GET, valid for a limited time.")
    bytes: int
    sha256: str = Field(description="Hex SHA-256 of the stored file; verify downloads against it.")
    content_type: str = "video/mp4"
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None


class ProblemOut(BaseModel):
    code: str
    message: str


class GenerationResource(BaseModel):
    """A generation as the API serves it (tenant and internal bookkeeping left out)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "id": "gen_01JH8Z6Q8K7V2Y3M4N5P6R7S8T",
                "status": "succeeded",
                "mode": "text-to-video",
                "model": "kling-o3",
                "provider": "evolink",
                "provider_task_id": "task-unified-1757000000-abc",
                "created_at": EXAMPLE_TIME,
                "updated_at": EXAMPLE_TIME,
                "progress": 100,
                "request": {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 5},
                "estimated_cost": {"usd": "0.3750", "provider": "evolink"},
                "actual_cost": {
                    "usd": "0.3750",
                    "units": "27.0000",
                    "unit": "evolink_credits",
                    "basis": "reported",
                },
                "outputs": [
                    {
                        "s3_uri": "s3://media-bucket/outputs/acme/gen_01JH8Z6Q8K7V2Y3M4N5P6R7S8T/video-1.mp4",
                        "bucket": "media-bucket",
                        "key": "outputs/acme/gen_01JH8Z6Q8K7V2Y3M4N5P6R7S8T/video-1.mp4",
                        "url": "https://media-bucket.s3.amazonaws.com/outputs/…?X-Amz-Signature=…",
                        "bytes": 1234567,
                        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                        "content_type": "video/mp4",
                        "duration_s": 5.0,
                    }
                ],
                "metadata": {"campaign": "spring"},
                "source": "api",
            }
        },
    )

    id: str
    status: Status
    mode: Mode
    model: Model
    provider: str | None = None
    account: str | None = Field(default=None, description="The provider account the task runs on.")
    provider_task_id: str | None = None
    queue_position: int | None = Field(
        default=None, description="Queued only: 1 = the next to start when a provider slot frees."
    )
    estimated_start_at: datetime | None = Field(
        default=None, description="Queued only: from observed task times. " + TIME_DESCRIPTION
    )
    created_at: datetime = Field(description=TIME_DESCRIPTION)
    updated_at: datetime = Field(description=TIME_DESCRIPTION)
    progress: int | None = Field(default=None, description="0-100, as the provider reports it.")
    request: dict[str, Any] = Field(description="The request as accepted, with defaults filled in.")
    estimated_cost: EstimatedCost | None = Field(
        default=None, description="For the provider actually chosen; amounts are strings with four places."
    )
    actual_cost: ActualCost | None = Field(
        default=None, description="What the provider charged: USD always set once final, plus its own units."
    )
    outputs: list[OutputOut] = Field(default_factory=list)
    error: ProblemOut | None = Field(default=None, description="Why it failed (failed only).")
    metadata: dict[str, str] = Field(default_factory=dict)
    source: str = Field(
        default="api",
        description="What created it: `api`, the `s3://bucket/key` of an upload or `eventbridge:<event id>`.",
    )


class GenerationList(BaseModel):
    items: list[GenerationResource]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class QuoteOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    provider: str
    supported: bool
    reason: str | None = Field(default=None, description="Why the provider cannot take the request.")
    usd: Amount | None = None
    credits: Amount | None = None
    billed_seconds: int | None = None
    note: str | None = None


class EstimateOut(BaseModel):
    """Every enabled provider's quote, cheapest first, and the provider a create would choose."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "quotes": [
                    {"provider": "evolink", "supported": True, "usd": "0.3750", "billed_seconds": 5},
                    {"provider": "kling", "supported": True, "usd": "0.4200", "billed_seconds": 5},
                ],
                "chosen": "evolink",
            }
        },
    )

    quotes: list[QuoteOut]
    chosen: str | None = Field(description="Null when no enabled provider supports the request.")
    note: str | None = None


# ---- elements ---------------------------------------------------------------------------------------


class ElementAtProviderOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    element_id: str | None = None
    task_id: str | None = None
    error: ProblemOut | None = None


class ElementResource(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "id": "elm_01JH8Z6Q8K7V2Y3M4N5P6R7S8T",
                "status": "ready",
                "name": "Mascot",
                "frontal_image": "s3://media-bucket/inputs/acme/front.png",
                "reference_images": ["s3://media-bucket/inputs/acme/side.png"],
                "providers": {"kling": {"status": "ready", "element_id": "860381"}},
                "ready_providers": ["kling"],
                "created_at": EXAMPLE_TIME,
                "updated_at": EXAMPLE_TIME,
            }
        },
    )

    id: str
    status: ElementStatus
    name: str
    description: str | None = None
    frontal_image: str
    reference_images: list[str]
    providers: dict[str, ElementAtProviderOut] = Field(default_factory=dict)
    ready_providers: list[str] = Field(default_factory=list, description="Where it can be used now.")
    error: ProblemOut | None = None
    created_at: datetime = Field(description=TIME_DESCRIPTION)
    updated_at: datetime = Field(description=TIME_DESCRIPTION)


class ElementList(BaseModel):
    items: list[ElementResource]
    next_cursor: str | None = None


# ---- webhooks ---------------------------------------------------------------------------------------


class DeliveryOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    webhook_id: str
    event_type: str
    sequence: int
    attempt: int
    attempted_at: datetime = Field(description=TIME_DESCRIPTION)
    url: str
    host: str
    outcome: Literal["delivered", "failed", "gone", "rejected"]
    status_code: int | None = None
    error: str | None = None
    duration_ms: int
    next_retry_at: datetime | None = None
    dead_lettered: bool = False


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class RedeliveryOut(BaseModel):
    webhook_id: str
    sequence: int
    status: Literal["queued"]


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="Standard Webhooks signing secret, `whsec_…`.")


# ---- uploads ----------------------------------------------------------------------------------------


class UploadTicket(BaseModel):
    """A presigned S3 POST: send `fields` plus the file (last) as multipart/form-data to `url`."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "url": "https://media-bucket.s3.amazonaws.com/",
                "fields": {"key": "inputs/acme/upl_01JH…/portrait.png", "Content-Type": "image/png"},
                "s3_uri": "s3://media-bucket/inputs/acme/upl_01JH…/portrait.png",
                "max_bytes": 10485760,
                "expires_at": EXAMPLE_TIME,
            }
        }
    )

    url: str
    fields: dict[str, str]
    s3_uri: str = Field(description="Use it as an input (first_frame, reference_images, video.url, …).")
    content_type: str
    max_bytes: int
    expires_at: datetime = Field(description=TIME_DESCRIPTION)


def accepted(body: BaseModel, *, replayed: bool) -> Response[Any]:
    """A 202 for a create, with `Idempotent-Replayed: true` when it is the stored answer."""
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers=headers,
    )
