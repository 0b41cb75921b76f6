"""Webhook routes of the HTTP API: delivery history, redelivery and the tenant's signing secret.

Included into the API with `app.include_router(router)`, which brings validation and the error mapping;
each route resolves the tenant and calls one function of `kling_pipeline.services.webhooks`. Another
tenant's generation answers 404 exactly like a missing one.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from kling_pipeline.routes.contract import (
    DeliveryList,
    DeliveryOut,
    RedeliveryOut,
    WebhookSecretOut,
    responses,
)
from kling_pipeline.routes.tenant import Tenant
from kling_pipeline.services.webhooks import list_deliveries, redeliver, secret_for_tenant

router = Router()  # type: ignore[no-untyped-call]


@router.get(
    "/v1/generations/<generation_id>/deliveries",
    summary="List webhook delivery attempts, newest first",
    tags=["webhooks"],
    responses=responses(200, "Every attempt of every delivery sequence.", 404),
)
def get_deliveries(generation_id: str, tenant_id: Tenant) -> DeliveryList:
    attempts = list_deliveries(tenant_id, generation_id)
    return DeliveryList(
        items=[DeliveryOut.model_validate(attempt.model_dump(mode="json")) for attempt in attempts]
    )


@router.post(
    "/v1/generations/<generation_id>/deliveries/redeliver",
    summary="Send the terminal webhook again (new retry schedule, same webhook-id)",
    tags=["webhooks"],
    responses=responses(202, "A new delivery sequence is queued.", 404, 409),
)
def post_redeliver(generation_id: str, tenant_id: Tenant) -> tuple[RedeliveryOut, int]:
    return RedeliveryOut.model_validate(redeliver(tenant_id, generation_id)), 202


@router.get(
    "/v1/webhooks/secret",
    summary="Your Standard Webhooks signing secret (whsec_…)",
    tags=["webhooks"],
    responses=responses(200, "The secret to verify our webhook signatures with."),
)
def get_webhook_secret(tenant_id: Tenant) -> WebhookSecretOut:
    return WebhookSecretOut(secret=secret_for_tenant(tenant_id))
