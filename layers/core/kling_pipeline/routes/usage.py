"""`GET /v1/usage`: the tenant's month of spending against its budget."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from kling_pipeline.routes.contract import responses
from kling_pipeline.routes.tenant import Tenant
from kling_pipeline.services.budgets import Usage, parse_month, usage

router = Router()  # type: ignore[no-untyped-call]


@router.get(
    "/v1/usage",
    summary="This month's spend, reservations and budget",
    tags=["usage"],
    responses=responses(200, "Budget, spent and reserved USD, counts and spend by provider and mode."),
)
def get_usage(
    tenant_id: Tenant,
    month: Annotated[
        str | None, Query(description="YYYY-MM (UTC); default: the current month.", pattern=r"^\d{4}-\d{2}$")
    ] = None,
) -> Usage:
    return usage(tenant_id, parse_month(month))
