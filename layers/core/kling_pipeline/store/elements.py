"""Custom elements in the generations table, beside the generations (same pattern, own key prefixes).

    pk "ELEM#<id>", sk "ELEM", gsi1pk "TENANT#<tenant>#ELEM", gsi1sk "<created_at>#<id>" (index ByTenant)

Stored like every `DocumentStore` resource (whole JSON, compare-and-set on `version`). A deleted
element keeps its item for 30 days (evidence, and so a late writer's CAS cannot resurrect it) but loses
its index keys, so it leaves the tenant's list at once; the table's TTL removes it afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from kling_pipeline.domain.element import Element, ElementPage, ElementStatus
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.errors import NotFound
from kling_pipeline.store.documents import DocumentStore

_DELETED_TTL = timedelta(days=30)


class ElementStore(DocumentStore[Element]):
    kind = "ELEM"
    model = Element

    def get_for_tenant(self, tenant_id: str, element_id: str) -> Element:
        """Another tenant's element, a deleted one and a missing one are indistinguishable."""
        element = self.get(element_id)
        if element is None or element.tenant_id != tenant_id or element.status is ElementStatus.DELETED:
            raise NotFound(f"element {element_id} not found")
        return element

    def list_for_tenant(self, tenant_id: str, *, limit: int, cursor: str | None) -> ElementPage:
        """Newest first; deleted elements are not in the index."""
        items, next_cursor = self.page_for_tenant(tenant_id, limit=limit, cursor=cursor)
        return ElementPage(items=items, next_cursor=next_cursor)

    def attributes(self, element: Element) -> dict[str, Any]:
        if element.status is ElementStatus.DELETED:
            deleted_at = element.deleted_at or utcnow()
            return {"expires_at": int((deleted_at + _DELETED_TTL).timestamp())}
        return self.index_keys(element)


@cache
def get_element_store() -> ElementStore:
    from kling_pipeline import aws

    return ElementStore(aws.generations_table())
