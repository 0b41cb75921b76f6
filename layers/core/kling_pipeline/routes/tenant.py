"""The caller's tenant, for every route module of the API.

The tenant is the API Gateway API key id (locally the front door sets it from `LOCAL_API_KEYS`).
API Gateway already rejects requests without a valid key; this is the second lock for anything that
reaches the function another way. Routers share the resolver's current event once included.
"""

from __future__ import annotations

from typing import Annotated, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from kling_pipeline.errors import Unauthorized
from kling_pipeline.observability import logger

router = Router()  # type: ignore[no-untyped-call]


def current_tenant() -> str:
    event = cast(APIGatewayProxyEvent, router.current_event)
    tenant = event.request_context.identity.api_key_id
    if not tenant:
        raise Unauthorized("missing or unknown API key")
    logger.append_keys(tenant_id=tenant)
    return tenant


Tenant = Annotated[str, Depends(current_tenant)]
