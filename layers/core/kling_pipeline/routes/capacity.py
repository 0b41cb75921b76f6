"""`GET /v1/capacity`: per provider, the accounts' limits, tasks in flight and generations waiting.

Tenant-visible and free of secrets: account names and numbers only, never credentials.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from kling_pipeline.routes.contract import responses
from kling_pipeline.routes.tenant import Tenant
from kling_pipeline.services.capacity import CapacityView, capacity_view

router = Router()  # type: ignore[no-untyped-call]


@router.get(
    "/v1/capacity",
    summary="Provider accounts' limits, tasks in flight and generations queued",
    tags=["capacity"],
    responses=responses(200, "Per provider: its accounts (limit, effective limit, in flight) and the queue."),
)
def get_capacity(tenant_id: Tenant) -> CapacityView:
    return capacity_view()
