"""Resources stored whole as JSON in the generations table, changed only by compare-and-set.

    pk "<KIND>#<id>", sk "<KIND>", gsi1pk "TENANT#<tenant>#<KIND>", gsi1sk "<created_at>#<id>" (ByTenant)

Every change reads the item, lets the caller decide on a copy (`mutate` returns the new resource or None
for "no change"), and writes it back only if `version` is still what was read. Two writers — a callback
and the fallback poller, a retry and its original — can therefore never undo each other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from botocore.exceptions import ClientError
from pydantic import BaseModel

from kling_pipeline.domain.generation import utcnow
from kling_pipeline.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

BY_TENANT_INDEX = "ByTenant"
_MAX_CAS_ATTEMPTS = 8


class Document(Protocol):
    id: str
    tenant_id: str
    status: Any  # a StrEnum; stored beside the JSON so conditions and filters can use it
    created_at: datetime
    updated_at: datetime


D = TypeVar("D", bound=BaseModel)


class DocumentStore(Generic[D]):
    kind: ClassVar[str]
    model: type[D]

    def __init__(self, table: Table) -> None:
        self._table = table

    @classmethod
    def partition_key(cls, document_id: str) -> str:
        """The partition the document shares with the items kept beside it (receipts, deliveries)."""
        return f"{cls.kind}#{document_id}"

    def key(self, document_id: str) -> dict[str, str]:
        return {"pk": self.partition_key(document_id), "sk": self.kind}

    def tenant_pk(self, tenant_id: str) -> str:
        return f"TENANT#{tenant_id}#{self.kind}"

    def create(self, document: D) -> None:
        try:
            self._table.put_item(
                Item=self._item(document, version=1), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise Conflict(f"{_doc(document).id} already exists") from exc
            raise

    def get(self, document_id: str) -> D | None:
        found = self._get_item(document_id)
        return None if found is None else found[0]

    def update(self, document_id: str, mutate: Callable[[D], D | None]) -> D | None:
        """Apply `mutate` with optimistic locking; the stored resource after it, or None (declined/gone)."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            found = self._get_item(document_id)
            if found is None:
                return None
            current, version = found  # freshly parsed: `mutate` may change it in place
            changed = mutate(current)
            if changed is None:
                return None
            _doc(changed).updated_at = utcnow()
            try:
                self._table.put_item(
                    Item=self._item(changed, version=version + 1),
                    ConditionExpression="version = :v",
                    ExpressionAttributeValues={":v": version},
                )
                return changed
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
        raise Conflict(f"{document_id} is changing too often; try again")

    def page_for_tenant(
        self, tenant_id: str, *, limit: int, cursor: str | None, status: str | None = None
    ) -> tuple[list[D], str | None]:
        """Newest first. With a status filter, keeps reading pages until `limit` matches or the end."""
        items: list[D] = []
        start_key = decode_cursor(cursor)
        if start_key and start_key.get("gsi1pk") != self.tenant_pk(tenant_id):
            raise InvalidInput.for_field("cursor", "is not a cursor this API returned")
        while len(items) < limit:
            query: dict[str, Any] = {
                "IndexName": BY_TENANT_INDEX,
                "KeyConditionExpression": "gsi1pk = :pk",
                "ExpressionAttributeValues": {":pk": self.tenant_pk(tenant_id)},
                "ScanIndexForward": False,
                "Limit": limit - len(items),
            }
            if status is not None:
                query["FilterExpression"] = "#s = :status"
                query["ExpressionAttributeNames"] = {"#s": "status"}
                query["ExpressionAttributeValues"][":status"] = status
            if start_key:
                query["ExclusiveStartKey"] = start_key
            page = self._table.query(**query)
            items.extend(self.model.model_validate_json(str(item["doc"])) for item in page["Items"])
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                break
        return items, encode_cursor(dict(start_key)) if start_key else None

    def attributes(self, document: D) -> dict[str, Any]:
        """Extra top-level attributes (conditions, TTL, index keys); the default indexes by tenant."""
        return self.index_keys(document)

    def index_keys(self, document: D) -> dict[str, Any]:
        doc = _doc(document)
        return {"gsi1pk": self.tenant_pk(doc.tenant_id), "gsi1sk": f"{doc.created_at.isoformat()}#{doc.id}"}

    def _get_item(self, document_id: str) -> tuple[D, int] | None:
        item = self._table.get_item(Key=self.key(document_id), ConsistentRead=True).get("Item")
        if item is None:
            return None
        return self.model.model_validate_json(str(item["doc"])), int(str(item["version"]))

    def _item(self, document: D, *, version: int) -> dict[str, Any]:
        doc = _doc(document)
        return {
            **self.key(doc.id),
            "tenant_id": doc.tenant_id,
            "status": str(doc.status),
            "version": version,
            "doc": document.model_dump_json(),
            **self.attributes(document),
        }


def _doc(document: BaseModel) -> Document:
    return document  # type: ignore[return-value]


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError as exc:
        raise InvalidInput.for_field("cursor", "is not a cursor this API returned") from exc
    if not isinstance(key, dict) or set(key) != {"pk", "sk", "gsi1pk", "gsi1sk"}:
        raise InvalidInput.for_field("cursor", "is not a cursor this API returned")
    return key
