"""The fair queue of generations waiting for a provider slot, in DynamoDB.

    pk "QUEUE#<tenant>", sk "<created_at>#<generation id>"   provider (cheapest that can run it)
    pk "QUEUES",         sk "<tenant>"                       waiting, last_served, expires_at (TTL)
    pk "QUEUED",         sk "ALL"                            waiting (every tenant's, summed)

One partition per tenant keeps each tenant first come, first served (sort key = creation time); the
"QUEUES" items list the tenants with something waiting and when each was last served, so the refill
serves tenants round-robin (least recently served first) and one tenant's 1,000-line `.jsonl` cannot
starve another tenant's single request. A tenant item is never deleted on the way (a concurrent enqueue
could be orphaned); it expires by TTL after the longest a generation can wait, and is filtered by
`expires_at` until DynamoDB removes it. `waiting` counts the tenant's entries (added on enqueue, taken
on claim and removal), so one query shows the whole queue's shape: tenants with nothing waiting are
skipped without reading their line, and positions need no counting across other tenants' entries. A
count a crash left wrong is corrected by the refill when it finds the line empty.

Every change of a line is one transaction with its tenant's count and the total ("QUEUED"), so the total
is exact: a create checks it in its own transaction ("nobody waits, so no need to line up") and a final
write in its own ("nobody waits, so no one to wake"), with no read of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError

from kling_pipeline.store.documents import TransactItem, is_cancelled_by_condition, is_condition_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_dynamodb.type_defs import ConditionCheckTypeDef

_TENANTS = "QUEUES"
_TOTAL = {"pk": "QUEUED", "sk": "ALL"}


@dataclass(frozen=True)
class QueueEntry:
    tenant_id: str
    generation_id: str
    created_at: datetime
    provider: str | None = None

    @property
    def sort_key(self) -> str:
        return f"{self.created_at.isoformat()}#{self.generation_id}"


@dataclass(frozen=True)
class TenantLine:
    tenant_id: str
    waiting: int
    last_served: Decimal


class QueueStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    @staticmethod
    def partition(tenant_id: str) -> str:
        return f"QUEUE#{tenant_id}"

    def enqueue(self, entry: QueueEntry, *, expires_at: float) -> bool:
        """Put the entry in line (its place is its creation time) and count it; False when it was there."""
        return self._change(
            {"Put": {**self._target(self._item(entry)), "ConditionExpression": "attribute_not_exists(pk)"}},
            entry.tenant_id,
            1,
            tenant_update="SET expires_at = :e, last_served = if_not_exists(last_served, :zero) "
            "ADD waiting :d",
            tenant_values={":e": int(expires_at), ":zero": 0},
        )

    def _change(
        self,
        entry_write: dict[str, Any],
        tenant_id: str,
        delta: int,
        *,
        tenant_update: str = "ADD waiting :d",
        tenant_values: dict[str, Any] | None = None,
        tenant_condition: str | None = None,
    ) -> bool:
        """One line change (`entry_write`, when given) with its tenant's count and the total, all or nothing;
        False when a condition refused it."""
        tenant: dict[str, Any] = {
            **self._target(None, {"pk": _TENANTS, "sk": tenant_id}),
            "UpdateExpression": tenant_update,
            "ExpressionAttributeValues": {":d": delta, **(tenant_values or {})},
        }
        if tenant_condition:
            tenant["ConditionExpression"] = tenant_condition
        total = {
            **self._target(None, _TOTAL),
            "UpdateExpression": "ADD waiting :d",
            "ExpressionAttributeValues": {":d": delta},
        }
        items = [entry_write] if entry_write else []
        items += [{"Update": tenant}, {"Update": total}]
        try:
            self._table.meta.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if is_cancelled_by_condition(exc):
                return False
            raise
        return True

    def _target(self, item: dict[str, Any] | None, key: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"TableName": self._table.name, **({"Item": item} if item is not None else {"Key": key})}

    def waiting(self) -> int:
        """How many generations wait in every line together (one consistent read)."""
        item = self._table.get_item(Key=_TOTAL, ConsistentRead=True).get("Item") or {}
        return int(str(item.get("waiting", 0)))

    def nobody_waits_check(self) -> TransactItem:
        """A transaction item that holds only while no generation waits in any line."""
        check: ConditionCheckTypeDef = {
            "TableName": self._table.name,
            "Key": _TOTAL,
            "ConditionExpression": "attribute_not_exists(waiting) OR waiting <= :zero",
            "ExpressionAttributeValues": {":zero": 0},
        }
        return {"ConditionCheck": check}

    def reset_total(self, seen: int) -> None:
        """The total counts entries no line shows (a tenant item expired with a count left on it): zero it,
        unless it changed since it was read as `seen` (an enqueue came in)."""
        try:
            self._table.update_item(
                Key=_TOTAL,
                UpdateExpression="SET waiting = :zero",
                ConditionExpression="waiting = :seen",
                ExpressionAttributeValues={":zero": 0, ":seen": seen},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def lines(self, now: float) -> list[TenantLine]:
        """Every tenant's line, least recently served first (with nothing waiting too)."""
        items = self._query_all(
            KeyConditionExpression=Key("pk").eq(_TENANTS),
            FilterExpression=Attr("expires_at").gt(int(now)),
            ConsistentRead=True,
        )
        lines = [
            TenantLine(
                tenant_id=str(item["sk"]),
                waiting=max(0, int(str(item.get("waiting", 0)))),
                last_served=Decimal(str(item.get("last_served", 0))),
            )
            for item in items
        ]
        return sorted(lines, key=lambda line: (line.last_served, line.tenant_id))

    def tenants(self, now: float) -> list[str]:
        """Tenants with generations waiting, least recently served first."""
        return [line.tenant_id for line in self.lines(now) if line.waiting > 0]

    def recount(self, tenant_id: str) -> None:
        """The line is empty although its count said otherwise (a tenant item left from before): zero the
        count and take it off the total, unless it changed since it was read."""
        item = self._table.get_item(Key={"pk": _TENANTS, "sk": tenant_id}, ConsistentRead=True).get("Item")
        stale = int(str(item.get("waiting", 0))) if item else 0
        if stale:
            self._change(
                {},
                tenant_id,
                -stale,
                tenant_values={":stale": stale},
                tenant_condition="waiting = :stale",
            )

    def heads(self, tenant_id: str, limit: int = 1) -> list[QueueEntry]:
        """The tenant's oldest `limit` entries, oldest first."""
        page = self._table.query(
            KeyConditionExpression=Key("pk").eq(self.partition(tenant_id)), Limit=limit, ConsistentRead=True
        )
        return [self._entry(item) for item in page["Items"]]

    def claim(self, entry: QueueEntry) -> bool:
        """Take the entry out of the queue; False when another refill took it first."""
        key = {"pk": self.partition(entry.tenant_id), "sk": entry.sort_key}
        delete = {"Delete": {**self._target(None, key), "ConditionExpression": "attribute_exists(pk)"}}
        return self._change(delete, entry.tenant_id, -1)

    def put_back(self, entry: QueueEntry) -> None:
        """A claimed entry that could not start after all returns to its place in line."""
        put = {"Put": {**self._target(self._item(entry)), "ConditionExpression": "attribute_not_exists(pk)"}}
        self._change(put, entry.tenant_id, 1)

    def remove(self, entry: QueueEntry) -> None:
        """Take an entry out of line if it is there (canceled, failed or started elsewhere)."""
        self.claim(entry)

    def served(self, tenant_id: str, now: float) -> None:
        """Move the tenant to the back of the round-robin."""
        self._table.update_item(
            Key={"pk": _TENANTS, "sk": tenant_id},
            UpdateExpression="SET last_served = :now",
            ExpressionAttributeValues={":now": Decimal(str(round(now, 6)))},
        )

    def count_before(self, tenant_id: str, sort_key: str | None, *, at_most: int | None = None) -> int:
        """How many of the tenant's entries are ahead of `sort_key` (all of them when None), capped."""
        condition: ConditionBase = Key("pk").eq(self.partition(tenant_id))
        if sort_key is not None:
            condition = condition & Key("sk").lt(sort_key)
        count = 0
        query: dict[str, Any] = {"KeyConditionExpression": condition, "Select": "COUNT"}
        while True:
            if at_most is not None:
                query["Limit"] = max(1, at_most - count)
            page = self._table.query(**query)
            count += int(page["Count"])
            if "LastEvaluatedKey" not in page or (at_most is not None and count >= at_most):
                return count if at_most is None else min(count, at_most)
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def entries(self, tenant_id: str) -> list[QueueEntry]:
        return [
            self._entry(item)
            for item in self._query_all(KeyConditionExpression=Key("pk").eq(self.partition(tenant_id)))
        ]

    def _query_all(self, **query: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._table.query(**query)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _item(self, entry: QueueEntry) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": self.partition(entry.tenant_id),
            "sk": entry.sort_key,
            "generation_id": entry.generation_id,
            "created_at": entry.created_at.isoformat(),
        }
        if entry.provider:
            item["provider"] = entry.provider
        return item

    def _entry(self, item: dict[str, Any]) -> QueueEntry:
        return QueueEntry(
            tenant_id=str(item["pk"]).removeprefix("QUEUE#"),
            generation_id=str(item["generation_id"]),
            created_at=datetime.fromisoformat(str(item["created_at"])),
            provider=str(item["provider"]) if item.get("provider") else None,
        )


@cache
def get_queue_store() -> QueueStore:
    from kling_pipeline import aws

    return QueueStore(aws.generations_table())
