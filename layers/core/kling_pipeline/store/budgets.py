"""Tenant budgets and monthly usage in the generations table, changed only by conditional writes.

    pk "TENANT#<tenant>", sk "BUDGET"           the operator's override: monthly_usd
    pk "TENANT#<tenant>", sk "USAGE#<YYYY-MM>"  committed_usd (= spent + reserved), spent_usd, reserved_usd,
                                                flat counters "count#<dim>#<value>", "spent#<dim>#<value>"
    pk "GEN#<id>", sk "SETTLED" | "SETTLED#LATE"  the markers that make a settlement happen once

Why `committed_usd`: DynamoDB conditions cannot add two attributes, so the sum the cap applies to is kept
as one attribute; a reservation is then ONE UpdateItem conditioned on `committed_usd <= budget - estimate`,
and two concurrent creates can never both pass the last dollars. A settlement moves the reservation to the
actual cost in one transaction with its marker, so a repeated announce never settles twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kling_pipeline.store.documents import is_condition_failure
from kling_pipeline.store.generations import GenerationStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, UpdateTypeDef

ZERO = Decimal(0)


@dataclass(frozen=True)
class MonthUsage:
    """One tenant's month as stored: totals plus the flat per-dimension counters."""

    spent_usd: Decimal = ZERO
    reserved_usd: Decimal = ZERO
    counters: dict[str, Decimal] | None = None

    def breakdown(self, kind: str, dimension: str) -> dict[str, Decimal]:
        """{value: amount} of the `kind` ("count" | "spent") counters of one dimension."""
        prefix = f"{kind}#{dimension}#"
        return {
            key[len(prefix) :]: value
            for key, value in (self.counters or {}).items()
            if key.startswith(prefix)
        }


@dataclass(frozen=True)
class Settlement:
    """What one generation adds to its month when it ends (or when a late cost arrives)."""

    tenant_id: str
    month: str
    generation_id: str
    reserved_usd: Decimal
    actual_usd: Decimal
    provider: str | None
    mode: str
    status: str


class BudgetStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    @staticmethod
    def _tenant_pk(tenant_id: str) -> str:
        return f"TENANT#{tenant_id}"

    def _usage_key(self, tenant_id: str, month: str) -> dict[str, str]:
        return {"pk": self._tenant_pk(tenant_id), "sk": f"USAGE#{month}"}

    # ---- budgets ------------------------------------------------------------------------------------------

    def get_budget(self, tenant_id: str) -> Decimal | None:
        item = self._table.get_item(Key={"pk": self._tenant_pk(tenant_id), "sk": "BUDGET"}).get("Item")
        return None if item is None else Decimal(str(item["monthly_usd"]))

    def set_budget(self, tenant_id: str, monthly_usd: Decimal | None) -> None:
        """Set (or, with None, remove) the tenant's override of the stack's default budget."""
        key = {"pk": self._tenant_pk(tenant_id), "sk": "BUDGET"}
        if monthly_usd is None:
            self._table.delete_item(Key=key)
        else:
            self._table.put_item(Item={**key, "tenant_id": tenant_id, "monthly_usd": monthly_usd})

    # ---- usage --------------------------------------------------------------------------------------------

    def usage(self, tenant_id: str, month: str) -> MonthUsage:
        item = self._table.get_item(Key=self._usage_key(tenant_id, month), ConsistentRead=True).get("Item")
        if item is None:
            return MonthUsage()
        counters = {
            str(key): Decimal(str(value))
            for key, value in item.items()
            if str(key).startswith(("count#", "spent#"))
        }
        return MonthUsage(
            spent_usd=Decimal(str(item.get("spent_usd", 0))),
            reserved_usd=Decimal(str(item.get("reserved_usd", 0))),
            counters=counters,
        )

    def reserve(self, tenant_id: str, month: str, amount: Decimal, *, headroom: Decimal | None) -> bool:
        """Add `amount` to the month's reservations unless that would pass the cap (`headroom` = budget -
        amount; None: no cap). One conditional UpdateItem; False when refused (nothing written)."""
        request: dict[str, Any] = {
            "Key": self._usage_key(tenant_id, month),
            "UpdateExpression": "ADD committed_usd :a, reserved_usd :a, #created :one SET tenant_id = :t",
            "ExpressionAttributeNames": {"#created": "count#status#created"},
            "ExpressionAttributeValues": {":a": amount, ":one": 1, ":t": tenant_id},
        }
        if headroom is not None:
            if headroom < 0:
                return False
            request["ConditionExpression"] = "attribute_not_exists(committed_usd) OR committed_usd <= :h"
            request["ExpressionAttributeValues"][":h"] = headroom
        try:
            self._table.update_item(**request)
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def release(self, tenant_id: str, month: str, amount: Decimal) -> None:
        """Undo a reservation whose generation was never written (the create failed right after it)."""
        self._table.update_item(
            Key=self._usage_key(tenant_id, month),
            UpdateExpression="ADD committed_usd :a, reserved_usd :a, #created :minus",
            ExpressionAttributeNames={"#created": "count#status#created"},
            ExpressionAttributeValues={":a": -amount, ":minus": -1},
        )

    def settle(self, settlement: Settlement, *, late: bool = False) -> bool:
        """Move the reservation to the actual cost, once per generation; with `late`, add a cost reported
        after the first settlement (once more, money only). False when it was done before."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {
            ":delta": settlement.actual_usd - settlement.reserved_usd,
            ":release": -settlement.reserved_usd,
            ":actual": settlement.actual_usd,
        }
        adds = ["committed_usd :delta", "reserved_usd :release", "spent_usd :actual"]
        dimensions = {"mode": settlement.mode, "provider": settlement.provider, "status": settlement.status}
        for index, (dimension, value) in enumerate(dimensions.items()):
            if value is None:
                continue
            if dimension != "status":
                names[f"#s{index}"] = f"spent#{dimension}#{value}"
                adds.append(f"#s{index} :actual")
            if not late:  # counts once per generation; a late cost only moves money
                names[f"#n{index}"] = f"count#{dimension}#{value}"
                adds.append(f"#n{index} :one")
                values[":one"] = 1
        update: UpdateTypeDef = {
            "TableName": self._table.name,
            "Key": self._usage_key(settlement.tenant_id, settlement.month),
            "UpdateExpression": "ADD " + ", ".join(adds),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        mark: PutTypeDef = {
            "TableName": self._table.name,
            "Item": {
                "pk": GenerationStore.partition_key(settlement.generation_id),
                "sk": "SETTLED#LATE" if late else "SETTLED",
                "tenant_id": settlement.tenant_id,
                "month": settlement.month,
                "actual_usd": settlement.actual_usd,
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            self._table.meta.client.transact_write_items(TransactItems=[{"Put": mark}, {"Update": update}])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

    def settled_usd(self, generation_id: str) -> Decimal | None:
        """What the first settlement recorded for a generation, None before it."""
        item = self._table.get_item(
            Key={"pk": GenerationStore.partition_key(generation_id), "sk": "SETTLED"}, ConsistentRead=True
        ).get("Item")
        return None if item is None else Decimal(str(item["actual_usd"]))


@cache
def get_budget_store() -> BudgetStore:
    from kling_pipeline import aws

    return BudgetStore(aws.generations_table())
