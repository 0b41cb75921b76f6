"""Custom elements in the generations table, beside the generations (same pattern, own key prefixes).

    pk "ELEM#<id>", sk "ELEM", gsi1pk "TENANT#<tenant>#ELEM", gsi1sk "<created_at>#<id>" (index ByTenant)

The resource is stored whole as JSON (`doc`); every change is a compare-and-set on `version`. A deleted
element keeps its item for 30 days (evidence, and so a late writer's CAS cannot resurrect it) but loses
its index keys, so it leaves the tenant's list at once; the table's TTL removes it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kling_pipeline.domain.element import Element, ElementPage, ElementStatus
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.errors import Conflict, InvalidInput, NotFound
from kling_pipeline.store.generations import _decode_cursor, _encode_cursor, _is_condition_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_ELEM_SK = "ELEM"
_DELETED_TTL = timedelta(days=30)
_MAX_CAS_ATTEMPTS = 8
BY_TENANT_INDEX = "ByTenant"

Mutation = Callable[[Element], Element | None]


def _pk(element_id: str) -> str:
    return f"ELEM#{element_id}"


def _tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#ELEM"


class ElementStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def create(self, element: Element) -> None:
        try:
            self._table.put_item(
                Item=self._item(element, version=1), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"element {element.id} already exists") from exc
            raise

    def get(self, element_id: str) -> Element | None:
        """The stored element, deleted ones included (callers serving users use `get_for_tenant`)."""
        found = self._get_item(element_id)
        return None if found is None else found[0]

    def get_for_tenant(self, tenant_id: str, element_id: str) -> Element:
        """Another tenant's element, a deleted one and a missing one are indistinguishable."""
        element = self.get(element_id)
        if element is None or element.tenant_id != tenant_id or element.status is ElementStatus.DELETED:
            raise NotFound(f"element {element_id} not found")
        return element

    def update(self, element_id: str, mutate: Mutation) -> Element | None:
        """Apply `mutate` under optimistic locking; None when it declined (no change) or the item is gone."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            found = self._get_item(element_id)
            if found is None:
                return None
            current, version = found
            changed = mutate(current.model_copy(deep=True))
            if changed is None:
                return None
            changed.updated_at = utcnow()
            try:
                self._table.put_item(
                    Item=self._item(changed, version=version + 1),
                    ConditionExpression="version = :v",
                    ExpressionAttributeValues={":v": version},
                )
                return changed
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise
        raise Conflict(f"element {element_id} is changing too often; try again")

    def list_for_tenant(self, tenant_id: str, *, limit: int, cursor: str | None) -> ElementPage:
        """Newest first; deleted elements are not in the index."""
        start_key = _decode_cursor(cursor)
        if start_key and start_key.get("gsi1pk") != _tenant_pk(tenant_id):
            raise InvalidInput.for_field("cursor", "is not a cursor this API returned")
        query: dict[str, Any] = {
            "IndexName": BY_TENANT_INDEX,
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": {":pk": _tenant_pk(tenant_id)},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            query["ExclusiveStartKey"] = start_key
        page = self._table.query(**query)
        items = [Element.model_validate_json(str(item["doc"])) for item in page["Items"]]
        last = page.get("LastEvaluatedKey")
        return ElementPage(items=items, next_cursor=_encode_cursor(dict(last)) if last else None)

    def _get_item(self, element_id: str) -> tuple[Element, int] | None:
        response = self._table.get_item(Key={"pk": _pk(element_id), "sk": _ELEM_SK}, ConsistentRead=True)
        item = response.get("Item")
        if item is None:
            return None
        return Element.model_validate_json(str(item["doc"])), int(str(item["version"]))

    @staticmethod
    def _item(element: Element, *, version: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": _pk(element.id),
            "sk": _ELEM_SK,
            "tenant_id": element.tenant_id,
            "status": element.status.value,
            "version": version,
            "doc": element.model_dump_json(),
        }
        if element.status is ElementStatus.DELETED:
            deleted_at = element.deleted_at or utcnow()
            item["expires_at"] = int((deleted_at + _DELETED_TTL).timestamp())
        else:
            item["gsi1pk"] = _tenant_pk(element.tenant_id)
            item["gsi1sk"] = f"{element.created_at.isoformat()}#{element.id}"
        return item


@cache
def get_element_store() -> ElementStore:
    from kling_pipeline import aws

    return ElementStore(aws.generations_table())
