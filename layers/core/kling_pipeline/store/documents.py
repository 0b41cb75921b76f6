"""Resources stored whole as JSON in the generations table, changed only by compare-and-set.

    pk "<KIND>#<id>", sk "<KIND>", gsi1pk "TENANT#<tenant>#<KIND>", gsi1sk "<created_at>#<id>" (ByTenant)

Every change lets the caller decide on a copy (`mutate` returns the new resource or None for "no change")
and writes it back with one conditional `UpdateItem`, only if `version` is still the one the decision was
made on. Two writers — a callback and the fallback poller, a retry and its original — can therefore never
undo each other.

A change that must happen together with writes to other items (a budget reservation with the create, the
budget's settlement with the final status) passes them as `along`: the document's write and theirs are
then one `TransactWriteItems`, all or nothing, still one call.

Reads are saved, not trusted: the store remembers the last (document, version) this process read or wrote,
and `update` decides on that copy without a `GetItem`. A stale copy costs nothing in correctness — the
version condition refuses the write, and DynamoDB hands back the current item with the refusal
(`ReturnValuesOnConditionCheckFailure`), so the retry needs no read either. A decision *not* to write is only
taken on a copy confirmed by the table, never on a remembered one.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar

from botocore.exceptions import ClientError
from pydantic import BaseModel

from kling_pipeline.clock import utcnow
from kling_pipeline.errors import Conflict, InvalidInput
from kling_pipeline.store.keys import partition_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    TransactItem: TypeAlias = TransactWriteItemTypeDef
else:
    TransactItem: TypeAlias = dict

BY_TENANT_INDEX = "ByTenant"
_MAX_CAS_ATTEMPTS = 8
_REMEMBERED = 512  # documents whose last seen version a process keeps (a Lambda handles a few at a time)
_KEY_ATTRIBUTES = frozenset({"pk", "sk"})


class Document(Protocol):
    id: str
    tenant_id: str
    status: Any  # a StrEnum; stored beside the JSON so conditions and filters can use it
    created_at: datetime
    updated_at: datetime


D = TypeVar("D", bound=BaseModel)


class AlongRefused(Exception):
    """A write made `along` with a document's refused its own condition (the document is unchanged, since
    a transaction is all or nothing). `reasons`: DynamoDB's CancellationReasons, the `along` items' first."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__(", ".join(str(reason.get("Code")) for reason in reasons))
        self.reasons = reasons


class DocumentStore(Generic[D]):
    kind: ClassVar[str]
    model: type[D]
    # Top-level attributes `attributes()` may leave out; an update then removes them (as a put would).
    optional_attributes: ClassVar[tuple[str, ...]] = ("gsi1pk", "gsi1sk", "expires_at")

    def __init__(self, table: Table) -> None:
        self._table = table
        self._seen: dict[str, tuple[str, int]] = {}  # id -> (doc JSON, version), oldest first
        self._seen_lock = threading.Lock()

    @classmethod
    def partition_key(cls, document_id: str) -> str:
        """The partition the document shares with the items kept beside it (receipts, deliveries)."""
        return partition_key(cls.kind, document_id)

    def key(self, document_id: str) -> dict[str, str]:
        return {"pk": self.partition_key(document_id), "sk": self.kind}

    def tenant_pk(self, tenant_id: str) -> str:
        return f"TENANT#{tenant_id}#{self.kind}"

    def create(self, document: D, *, along: list[TransactItem] | None = None) -> None:
        """Write a new document (with `along`, in one transaction with those writes)."""
        doc_json = stored_json(document)
        put: dict[str, Any] = {
            "Item": self._item(document, version=1),
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            if along is None:
                self._table.put_item(**put)
            else:
                self._transact("Put", put, along)
        except ClientError as exc:
            refused, existing = _refusal(exc)
            if not refused:
                raise
            # Our own put, applied with its answer lost and retried by botocore (found by the chaos run:
            # the create answered 409 "already exists" for the generation it had just created).
            if existing is None or low_level_doc(existing) != (doc_json, 1):
                raise Conflict(f"{_doc(document).id} already exists") from exc
        self.remember(_doc(document).id, doc_json, 1)

    def get(self, document_id: str) -> D | None:
        seen = self._read(document_id)
        return None if seen is None else self.model.model_validate_json(seen[0])

    def update(
        self,
        document_id: str,
        mutate: Callable[[D], D | None],
        *,
        along: Callable[[D], list[TransactItem]] | None = None,
    ) -> D | None:
        """Apply `mutate` with optimistic locking; the stored resource after it, or None (declined/gone).
        `along(changed)`: writes that go with the change, in the same transaction (AlongRefused if one
        of them refuses its condition)."""
        seen = self._recall(document_id)
        confirmed = seen is None  # a copy just read (or handed back by a refused write) is confirmed
        if seen is None and (seen := self._read(document_id)) is None:
            return None
        for _ in range(_MAX_CAS_ATTEMPTS):
            doc_json, version = seen
            changed = mutate(self.model.model_validate_json(doc_json))  # a fresh copy: mutate may edit it
            if changed is None:
                if confirmed:
                    return None
                # Declined on a remembered copy: decide again on the table's.
                if (seen := self._read(document_id)) is None:
                    return None
                confirmed = True
                continue
            _doc(changed).updated_at = utcnow()
            write: dict[str, Any] = {
                "Key": self.key(document_id),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                **self._update_expression(changed, version),
            }
            try:
                if along is None:
                    self._table.update_item(**write)
                else:
                    self._transact("Update", write, along(changed))
            except ClientError as exc:
                refused, current = _refusal(exc)
                if not refused:
                    raise
                if current is None:
                    self._forget(document_id)
                    return None
                seen = low_level_doc(current)
                self.remember(document_id, *seen)
                confirmed = True
                continue
            self.remember(document_id, stored_json(changed), version + 1)
            return changed
        raise Conflict(f"{document_id} is changing too often; try again")

    def _transact(self, kind: str, write: dict[str, Any], along: list[TransactItem]) -> None:
        """The document's write (`kind` "Put" or "Update") first, then `along`: all applied or none.
        botocore gives the call one ClientRequestToken for all its retries, so a retry after a lost answer
        is not applied twice."""
        items: list[Any] = [{kind: {"TableName": self._table.name, **write}}, *along]
        self._table.meta.client.transact_write_items(TransactItems=items)

    def _update_expression(self, document: D, version: int) -> dict[str, Any]:
        """SET every attribute of the new item, REMOVE the optional ones it no longer has; if `version`."""
        new_item = self._item(document, version=version + 1)
        item = {name: value for name, value in new_item.items() if name not in _KEY_ATTRIBUTES}
        names = {f"#a{i}": name for i, name in enumerate(item)}
        values: dict[str, Any] = {f":a{i}": value for i, value in enumerate(item.values())}
        removed = [name for name in self.optional_attributes if name not in item]
        names.update({f"#r{i}": name for i, name in enumerate(removed)})
        expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(item)))
        if removed:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        names["#version"] = "version"
        values[":expected"] = version
        return {
            "UpdateExpression": expression,
            "ConditionExpression": "#version = :expected",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def page_for_tenant(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        sort_key_range: tuple[str | None, str | None] = (None, None),
        where: Callable[[D], bool] | None = None,
    ) -> tuple[list[D], str | None]:
        """Newest first. With a filter (`status`, `where`), keeps reading pages until `limit` matches or the
        end; `sort_key_range` (from inclusive, to exclusive) bounds the index's `created_at#id` sort key."""
        items: list[D] = []
        start_key = decode_cursor(cursor)
        if start_key and start_key.get("gsi1pk") != self.tenant_pk(tenant_id):
            raise InvalidInput.for_field("cursor", "is not a cursor this API returned")
        key_condition, key_values = "gsi1pk = :pk", {":pk": self.tenant_pk(tenant_id)}
        low, high = sort_key_range
        if low is not None and high is not None:
            key_condition += " AND gsi1sk BETWEEN :low AND :high"
            key_values.update({":low": low, ":high": high})
        elif low is not None:
            key_condition += " AND gsi1sk >= :low"
            key_values[":low"] = low
        elif high is not None:
            key_condition += " AND gsi1sk < :high"
            key_values[":high"] = high
        while len(items) < limit:
            query: dict[str, Any] = {
                "IndexName": BY_TENANT_INDEX,
                "KeyConditionExpression": key_condition,
                "ExpressionAttributeValues": dict(key_values),
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
            found = (self.model.model_validate_json(str(item["doc"])) for item in page["Items"])
            items.extend(item for item in found if where is None or where(item))
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

    def _read(self, document_id: str) -> tuple[str, int] | None:
        """One consistent read; remembered, so the next `update` need not read again."""
        item = self._table.get_item(Key=self.key(document_id), ConsistentRead=True).get("Item")
        if item is None:
            self._forget(document_id)
            return None
        return self.remember_item(document_id, item)

    def remember_item(self, document_id: str, item: Mapping[str, Any]) -> tuple[str, int]:
        """Keep the (doc JSON, version) of an item read by any call (a GetItem, an UpdateItem's ALL_NEW)."""
        seen = str(item["doc"]), int(str(item["version"]))
        self.remember(document_id, *seen)
        return seen

    def remember(self, document_id: str, doc_json: str, version: int) -> None:
        with self._seen_lock:
            self._seen.pop(document_id, None)
            self._seen[document_id] = (doc_json, version)
            if len(self._seen) > _REMEMBERED:
                del self._seen[next(iter(self._seen))]

    def _recall(self, document_id: str) -> tuple[str, int] | None:
        with self._seen_lock:
            return self._seen.get(document_id)

    def _forget(self, document_id: str) -> None:
        with self._seen_lock:
            self._seen.pop(document_id, None)

    def _item(self, document: D, *, version: int) -> dict[str, Any]:
        doc = _doc(document)
        return {
            **self.key(doc.id),
            "tenant_id": doc.tenant_id,
            "status": str(doc.status),
            "version": version,
            "doc": stored_json(document),
            **self.attributes(document),
        }


def stored_json(document: BaseModel) -> str:
    """The document as stored: fields at their defaults left out (they read back the same), so the item
    stays small — DynamoDB bills every write by the item's size in KB, and a generation is written
    about five times."""
    return document.model_dump_json(exclude_defaults=True)


def _doc(document: BaseModel) -> Document:
    return document  # type: ignore[return-value]


def low_level_doc(item: Mapping[str, Any]) -> tuple[str, int]:
    """(doc JSON, version) of an item in DynamoDB's wire format (what a refused condition hands back)."""
    return str(item["doc"]["S"]), int(item["version"]["N"])


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def refused_by_condition(reason: Mapping[str, Any]) -> bool:
    """Whether one of a refused transaction's CancellationReasons is its item's own condition."""
    return reason.get("Code") == "ConditionalCheckFailed"


def is_cancelled_by_condition(exc: ClientError) -> bool:
    """A transaction one of whose conditions refused it (nothing of it was written)."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []  # type: ignore[assignment]
    return any(map(refused_by_condition, reasons))


def _refusal(exc: ClientError) -> tuple[bool, Mapping[str, Any] | None]:
    """Whether the document's own condition refused the write, and the current item DynamoDB handed back
    with the refusal (wire format; None: no such item). A transaction refused by one of its `along` items
    raises AlongRefused; anything else is not a refusal."""
    if is_condition_failure(exc):
        return True, exc.response.get("Item")  # type: ignore[return-value]
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False, None
    reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []  # type: ignore[assignment]
    if reasons and refused_by_condition(reasons[0]):
        return True, reasons[0].get("Item")
    if any(map(refused_by_condition, reasons[1:])):
        raise AlongRefused(reasons[1:]) from exc
    return False, None


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
