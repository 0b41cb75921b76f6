"""Generation routes: create (with `Idempotency-Key`), list, get, cancel, and estimates.

Each route returns a model of `kling_pipeline.routes.contract`, which Powertools serialises and
publishes in `/openapi.json` together with every error status the route can answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from kling_pipeline.domain.listing import GenerationFilter
from kling_pipeline.domain.request import GenerationRequest, Mode
from kling_pipeline.domain.status import Status
from kling_pipeline.providers.base import ProviderName
from kling_pipeline.routes.contract import (
    BODY_ERRORS,
    REPLAY_HEADERS,
    EstimateOut,
    GenerationList,
    GenerationResource,
    accepted,
    responses,
)
from kling_pipeline.routes.query import refuse_unknown_query
from kling_pipeline.routes.tenant import Tenant
from kling_pipeline.services.cursors import open_cursor, seal_cursor
from kling_pipeline.services.generations import (
    cancel_generation,
    create_generation,
    estimate_generation,
    get_generation,
    list_generations,
)
from kling_pipeline.services.idempotency import run_once

router = Router()  # type: ignore[no-untyped-call]
LIST_PARAMETERS = ("status", "mode", "provider", "created_after", "created_before", "limit", "cursor")

# Declared for validation and OpenAPI; the service re-parses the raw JSON itself, as it does for S3 and
# EventBridge requests, so the stored request is identical whichever door it came through.
GenerationBody = Annotated[
    GenerationRequest,
    Body(
        description="The unified generation request.",
        openapi_examples={
            "text-to-video": {
                "summary": "Text to video",
                "value": {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 5},
            },
            "image-to-video": {
                "summary": "Image to video from an upload",
                "value": {
                    "mode": "image-to-video",
                    "prompt": "The character slowly turns and smiles",
                    "first_frame": "s3://media-bucket/inputs/acme/upl_01JH/portrait.png",
                },
            },
        },
    ),
]


def _raw_body() -> dict[str, Any]:
    body: dict[str, Any] = router.current_event.json_body
    return body


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same key and body within 24 h returns the first response and never submits twice.",
    ),
]


def _create(body: dict[str, Any], tenant_id: str, key: str | None) -> dict[str, Any]:
    return create_generation(body, tenant_id=tenant_id, source="api", request_key=key).public()


@router.post(
    "/v1/generations",
    summary="Create a generation",
    tags=["generations"],
    responses=responses(
        202, "The generation, `queued` or `submitted`.", *BODY_ERRORS, 402, 409, 502, headers=REPLAY_HEADERS
    ),
)
def post_generation(
    request: GenerationBody, tenant_id: Tenant, idempotency_key: IdempotencyKey = None
) -> Response[GenerationResource]:
    once = run_once(
        _create, name="create_generation", tenant_id=tenant_id, key=idempotency_key, body=_raw_body()
    )
    return accepted(GenerationResource.model_validate(once.body), replayed=once.replayed)


@router.get(
    "/v1/generations",
    summary="List generations, newest first",
    tags=["generations"],
    responses=responses(200, "A page of generations.", 422),
)
def get_generations(  # keyword-only: Powertools passes every parameter by name
    *,
    tenant_id: Tenant,
    status: Annotated[Status | None, Query(description="Only generations in this status.")] = None,
    mode: Annotated[Mode | None, Query(description="Only generations of this mode.")] = None,
    provider: Annotated[ProviderName | None, Query(description="Only generations at this provider.")] = None,
    created_after: Annotated[
        datetime | None, Query(description="Only generations created at or after this time (RFC 3339).")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="Only generations created before this time (RFC 3339).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> GenerationList:
    refuse_unknown_query(router, LIST_PARAMETERS)
    filters = GenerationFilter(
        status=status,
        mode=mode,
        provider=provider.value if provider else None,
        created_after=created_after,
        created_before=created_before,
    )
    page = list_generations(
        tenant_id, status=status, limit=limit, cursor=open_cursor(cursor, tenant_id), filters=filters
    )
    return GenerationList(
        items=[GenerationResource.model_validate(item.public()) for item in page.items],
        next_cursor=seal_cursor(page.next_cursor, tenant_id),
    )


@router.get(
    "/v1/generations/<generation_id>",
    summary="Get a generation",
    tags=["generations"],
    responses=responses(200, "The generation.", 404),
)
def get_one_generation(generation_id: str, tenant_id: Tenant) -> GenerationResource:
    return GenerationResource.model_validate(get_generation(tenant_id, generation_id).public())


@router.post(
    "/v1/generations/<generation_id>/cancel",
    summary="Stop a generation",
    tags=["generations"],
    responses=responses(200, "The generation, `canceled` (or already terminal).", 404, 409, 502),
)
def post_cancel(generation_id: str, tenant_id: Tenant) -> GenerationResource:
    return GenerationResource.model_validate(cancel_generation(tenant_id, generation_id).public())


@router.post(
    "/v1/estimates",
    summary="Quote a generation without submitting it",
    tags=["estimates"],
    responses=responses(200, "Quotes, cheapest first, and the provider a create would choose.", *BODY_ERRORS),
)
def post_estimate(request: GenerationBody, tenant_id: Tenant) -> EstimateOut:
    estimate = estimate_generation(_raw_body(), tenant_id=tenant_id)
    return EstimateOut.model_validate(estimate.model_dump(mode="json"))
