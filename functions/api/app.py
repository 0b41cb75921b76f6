"""HTTP API (DESIGN.md §4): each route resolves the tenant, calls one service function, returns JSON.

Validation, OpenAPI and error bodies come from Powertools and `kling_pipeline.api_errors`; the logic
lives in `kling_pipeline.services.generations`, which every trigger (API, S3, EventBridge) shares.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.api import tenant
from functions.api.routes_elements import router as elements_router
from functions.api.tenant import Tenant
from kling_pipeline.api_errors import ensure_body_size, register_error_handlers
from kling_pipeline.domain.request import GenerationRequest
from kling_pipeline.domain.status import Status
from kling_pipeline.domain.validation import invalid_input
from kling_pipeline.errors import FieldIssue
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.services.generations import (
    cancel_generation,
    create_generation,
    estimate_generation,
    get_generation,
    list_generations,
)
from kling_pipeline.services.idempotency import register_lambda_context, run_once

API_TITLE = "kling-pipeline"
API_VERSION = "1.0.0"  # version of the /v1 contract document, not of the package
API_KEY_SCHEME = "apiKey"


def _parse_json(raw: str) -> dict[str, Any]:
    """Powertools' body deserializer, called the moment a route reads its body: an oversize body answers
    413 before anything parses it, and a body that is JSON but not an object is refused here, because
    Powertools would otherwise validate the first item of an array as if it were the body."""
    ensure_body_size(len(raw.encode()))
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise invalid_input([FieldIssue("body", "must be a JSON object")])
    return body


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_parse_json)
app.configure_openapi(
    title=API_TITLE,
    version=API_VERSION,
    description="Kling video generation into your own AWS account. Every /v1 route needs an `x-api-key`.",
    security_schemes={API_KEY_SCHEME: APIKey(name="x-api-key", in_=APIKeyIn.header)},
    security=[{API_KEY_SCHEME: []}],
)
app.enable_swagger(path="/docs", title=API_TITLE, version=API_VERSION)
register_error_handlers(app)
app.include_router(tenant.router)
app.include_router(elements_router)


# Declared for validation and OpenAPI; the service re-parses the raw JSON itself, as it does for S3 and
# EventBridge requests, so the stored request is identical whichever door it came through.
GenerationBody = Annotated[GenerationRequest, Body(description="The unified generation request.")]


def _raw_body() -> dict[str, Any]:
    body: dict[str, Any] = app.current_event.json_body
    return body


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same key and body within 24 h returns the first response and never submits twice.",
    ),
]


def _create(body: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    return create_generation(body, tenant_id=tenant_id, source="api").public()


@app.post("/v1/generations", summary="Create a generation", tags=["generations"])
def post_generation(
    request: GenerationBody, tenant_id: Tenant, idempotency_key: IdempotencyKey = None
) -> tuple[dict[str, Any], int]:
    body = _raw_body()
    return run_once(
        _create, name="create_generation", tenant_id=tenant_id, key=idempotency_key, body=body
    ), 202


@app.get("/v1/generations", summary="List generations, newest first", tags=["generations"])
def get_generations(
    tenant_id: Tenant,
    status: Annotated[Status | None, Query(description="Only generations in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> dict[str, Any]:
    page = list_generations(tenant_id, status=status, limit=limit, cursor=cursor)
    return {"items": [item.public() for item in page.items], "next_cursor": page.next_cursor}


@app.get("/v1/generations/<generation_id>", summary="Get a generation", tags=["generations"])
def get_one_generation(generation_id: str, tenant_id: Tenant) -> dict[str, Any]:
    return get_generation(tenant_id, generation_id).public()


@app.post("/v1/generations/<generation_id>/cancel", summary="Stop a generation", tags=["generations"])
def post_cancel(generation_id: str, tenant_id: Tenant) -> dict[str, Any]:
    return cancel_generation(tenant_id, generation_id).public()


@app.post("/v1/estimates", summary="Quote a generation without submitting it", tags=["estimates"])
def post_estimate(request: GenerationBody, tenant_id: Tenant) -> dict[str, Any]:
    estimate: dict[str, Any] = estimate_generation(_raw_body(), tenant_id=tenant_id).model_dump(mode="json")
    return estimate


@app.get("/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=app.get_openapi_json_schema()
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    register_lambda_context(context)
    return app.resolve(event, context)
