"""HTTP API (DESIGN.md §4): the resolver, its OpenAPI document and error bodies; routes live in the layer.

Validation, OpenAPI and error bodies come from Powertools and `kling_pipeline.api_errors`; the logic
lives in `kling_pipeline.routes` (thin) and `kling_pipeline.services`, shared by every trigger.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from kling_pipeline.api_errors import ensure_body_size, register_error_handlers
from kling_pipeline.domain.validation import JsonTooDeep, invalid_input, load_json
from kling_pipeline.errors import FieldIssue, InvalidJson
from kling_pipeline.observability import logger, metrics, tracer
from kling_pipeline.routes import (
    capacity,
    elements,
    generations,
    playground,
    tenant,
    uploads,
    usage,
    webhooks,
)
from kling_pipeline.routes.contract import openapi_document
from kling_pipeline.services.idempotency import register_lambda_context

API_TITLE = "kling-pipeline"
API_VERSION = "1.0.0"  # version of the /v1 contract document, not of the package
API_KEY_SCHEME = "apiKey"
DOCS_PATH = "/docs"


def _parse_json(raw: str) -> dict[str, Any]:
    """Powertools' body deserializer, called the moment a route reads its body: an oversize body answers
    413 before anything parses it, and a body that is JSON but not an object is refused here, because
    Powertools would otherwise validate the first item of an array as if it were the body."""
    ensure_body_size(len(raw.encode()))
    try:
        body = load_json(raw)
    except JsonTooDeep as exc:
        raise InvalidJson(f"request body {exc}") from None
    if not isinstance(body, dict):
        raise invalid_input([FieldIssue("body", "must be a JSON object")])
    return body


class Api(APIGatewayRestResolver):
    """Powertools' resolver, with the OpenAPI description and the docs page set up when first asked for.

    Their objects are Powertools' OpenAPI models (`event_handler.openapi.models`): defining those pydantic
    models cost the handler's cold start ~40 ms of CPU (bench/cold_import, same run), and no API call uses
    them: only `/openapi.json` and `/docs` do. Request validation needs none of it (Powertools builds each
    route's validation on its first request)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._lock = threading.Lock()  # the local stack serves requests from several threads
        self._described = False
        self._docs = False

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        self._describe()
        return super().get_openapi_schema(*args, **kwargs)

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        # As Powertools matches it: the event's `path` (no strip_prefixes here), trailing slashes ignored.
        if not self._docs and str(event.get("path") or "").rstrip("/") == DOCS_PATH:
            self._enable_docs()
        return super().resolve(event, context)

    def _describe(self) -> None:
        from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

        with self._lock:
            if self._described:
                return
            self.configure_openapi(
                title=API_TITLE,
                version=API_VERSION,
                description="Kling video generation into your own AWS account. Every /v1 route needs an "
                "`x-api-key`.",
                security_schemes={API_KEY_SCHEME: APIKey(name="x-api-key", in_=APIKeyIn.header)},
                security=[{API_KEY_SCHEME: []}],
            )
            self._described = True

    def _enable_docs(self) -> None:
        with self._lock:
            if not self._docs:
                self.enable_swagger(path=DOCS_PATH, title=API_TITLE, version=API_VERSION)
                self._docs = True


# A response that does not match its model is our bug: a 500 (logged), never a 422 blaming the caller.
app = Api(enable_validation=True, json_body_deserializer=_parse_json, response_validation_error_http_code=500)
register_error_handlers(app)
for routes in (tenant, generations, elements, webhooks, uploads, playground, usage, capacity):
    app.include_router(routes.router)


@app.get("/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=openapi_document(app.get_openapi_json_schema()),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    register_lambda_context(context)
    return app.resolve(event, context)
