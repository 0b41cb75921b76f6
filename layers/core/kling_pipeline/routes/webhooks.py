"""Webhook routes of the HTTP API: delivery history, redelivery and the tenant's signing secret.

Included into the API with `app.include_router(router)`, which brings validation and the error mapping;
each route resolves the tenant and calls one function of `kling_pipeline.services.webhooks`. Another
tenant's generation answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from kling_pipeline.routes.tenant import Tenant
from kling_pipeline.services.webhooks import list_deliveries, redeliver, secret_for_tenant

router = Router()  # type: ignore[no-untyped-call]


@router.get(
    "/v1/generations/<generation_id>/deliveries",
    summary="List webhook delivery attempts, newest first",
    tags=["webhooks"],
)
def get_deliveries(generation_id: str, tenant_id: Tenant) -> dict[str, Any]:
    attempts = list_deliveries(tenant_id, generation_id)
    return {"items": [attempt.model_dump(mode="json") for attempt in attempts]}


@router.post(
    "/v1/generations/<generation_id>/deliveries/redeliver",
    summary="Send the terminal webhook again (new retry schedule, same webhook-id)",
    tags=["webhooks"],
)
def post_redeliver(generation_id: str, tenant_id: Tenant) -> tuple[dict[str, Any], int]:
    return redeliver(tenant_id, generation_id), 202


@router.get(
    "/v1/webhooks/secret",
    summary="Your Standard Webhooks signing secret (whsec_…)",
    tags=["webhooks"],
)
def get_webhook_secret(tenant_id: Tenant) -> dict[str, str]:
    return {"secret": secret_for_tenant(tenant_id)}
