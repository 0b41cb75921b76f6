"""`/v1/elements` (DESIGN.md §4): custom elements, included into the API with `app.include_router(router)`.

Each route resolves the tenant, calls one function of `kling_pipeline.services.elements`, returns JSON.
Another tenant's element answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from kling_pipeline.domain.element import ElementCreateRequest
from kling_pipeline.routes.contract import (
    BODY_ERRORS,
    REPLAY_HEADERS,
    ElementList,
    ElementResource,
    accepted,
    responses,
)
from kling_pipeline.routes.query import refuse_unknown_query
from kling_pipeline.routes.tenant import Tenant
from kling_pipeline.services.cursors import open_cursor, seal_cursor
from kling_pipeline.services.elements import create_element, delete_element, get_element, list_elements
from kling_pipeline.services.idempotency import run_once

router = Router()  # type: ignore[no-untyped-call]


# Declared for validation and OpenAPI; the service re-parses the raw JSON (idempotency keys on it).
ElementBody = Annotated[ElementCreateRequest, Body(description="The element to create.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same key and body within 24 h returns the first response and never creates twice.",
    ),
]


def _create(body: dict[str, Any], tenant_id: str, _key: str | None) -> dict[str, Any]:
    # An element costs nothing: a crashed create run again makes a second, unused element at worst.
    return create_element(body, tenant_id=tenant_id).public()


@router.post(
    "/v1/elements",
    summary="Create a custom element",
    description="Created at every enabled provider that offers elements; poll it until `status` is `ready`.",
    tags=["elements"],
    responses=responses(202, "The element, `processing`.", *BODY_ERRORS, 409, 502, headers=REPLAY_HEADERS),
)
def post_element(
    request: ElementBody, tenant_id: Tenant, idempotency_key: IdempotencyKey = None
) -> Response[ElementResource]:
    body: dict[str, Any] = router.current_event.json_body
    once = run_once(_create, name="create_element", tenant_id=tenant_id, key=idempotency_key, body=body)
    return accepted(ElementResource.model_validate(once.body), replayed=once.replayed)


@router.get(
    "/v1/elements",
    summary="List custom elements, newest first",
    tags=["elements"],
    responses=responses(200, "A page of elements.", 422),
)
def get_elements(
    tenant_id: Tenant,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> ElementList:
    refuse_unknown_query(router, ("limit", "cursor"))
    page = list_elements(tenant_id, limit=limit, cursor=open_cursor(cursor, tenant_id))
    return ElementList(
        items=[ElementResource.model_validate(item.public()) for item in page.items],
        next_cursor=seal_cursor(page.next_cursor, tenant_id),
    )


@router.get(
    "/v1/elements/<element_id>",
    summary="Get a custom element",
    tags=["elements"],
    responses=responses(200, "The element.", 404),
)
def get_one_element(element_id: str, tenant_id: Tenant) -> ElementResource:
    return ElementResource.model_validate(get_element(tenant_id, element_id).public())


@router.delete(
    "/v1/elements/<element_id>",
    summary="Delete a custom element",
    tags=["elements"],
    responses=responses(204, "Deleted here and at the providers that can delete.", 404),
)
def delete_one_element(element_id: str, tenant_id: Tenant) -> Response[None]:
    delete_element(tenant_id, element_id)
    return Response(status_code=204, body=None)
