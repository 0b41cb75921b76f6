"""Tenant budgets and monthly usage in the generations table, changed only by conditional writes.

    pk "TENANT#<tenant>", sk "BUDGET"           the operator's override: monthly_usd
    pk "TENANT#<tenant>", sk "USAGE#<YYYY-MM>"  committed_usd (= spent + reserved), spent_usd, reserved_usd,
                                                flat counters "count#<dim>#<value>", "spent#<dim>#<value>"
    pk "GEN#<id>", sk "SETTLED" | "SETTLED#LATE"  the markers that make a settlement happen once

Why `committed_usd`: DynamoDB conditions cannot add two attributes, so the sum the cap applies to is kept
as one attribute; a reservation is then ONE conditional update (`committed_usd <= budget - estimate`), and
two concurrent creates can never both pass the last dollars. A settlement moves the reservation to the
actual cost in one transaction with its marker, so a repeated announce never settles twice.

Both are handed out as transaction items, so they ride along with the generation's own write (the create,
the final status): no call of their own. The cap a reservation applies comes from the tenant's override as
this process last saw it, checked in the same transaction (a `ConditionCheck` on the override item): a
stale memory refuses the transaction, never lets a create pass the operator's current budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kling_pipeline.store.documents import AlongRefused, TransactItem, refused_by_condition
from kling_pipeline.store.generations import GenerationStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_dynamodb.type_defs import ConditionCheckTypeDef, PutTypeDef, UpdateTypeDef

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
        # tenant -> its override as last read or written here (None: no override); checked on use
        self._overrides: dict[str, Decimal | None] = {}

    @staticmethod
    def _tenant_pk(tenant_id: str) -> str:
        return f"TENANT#{tenant_id}"

    def _usage_key(self, tenant_id: str, month: str) -> dict[str, str]:
        return {"pk": self._tenant_pk(tenant_id), "sk": f"USAGE#{month}"}

    # ---- budgets ------------------------------------------------------------------------------------------

    def _budget_key(self, tenant_id: str) -> dict[str, str]:
        return {"pk": self._tenant_pk(tenant_id), "sk": "BUDGET"}

    def get_budget(self, tenant_id: str) -> Decimal | None:
        item = self._table.get_item(Key=self._budget_key(tenant_id), ConsistentRead=True).get("Item")
        override = None if item is None else Decimal(str(item["monthly_usd"]))
        self._overrides[tenant_id] = override
        return override

    def remembered_budget(self, tenant_id: str) -> Decimal | None:
        """The override as this process last saw it (None: none, or never read — most tenants have none);
        a reservation checks in its transaction that it is still current."""
        return self._overrides.get(tenant_id)

    def set_budget(self, tenant_id: str, monthly_usd: Decimal | None) -> None:
        """Set (or, with None, remove) the tenant's override of the stack's default budget."""
        key = self._budget_key(tenant_id)
        if monthly_usd is None:
            self._table.delete_item(Key=key)
        else:
            self._table.put_item(Item={**key, "tenant_id": tenant_id, "monthly_usd": monthly_usd})
        self._overrides[tenant_id] = monthly_usd

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

    def reservation(
        self,
        tenant_id: str,
        month: str,
        amount: Decimal,
        *,
        override: Decimal | None,
        headroom: Decimal | None,
    ) -> list[TransactItem]:
        """Transaction items that add `amount` to the month's reservations unless that would pass the cap
        (`headroom` = budget - amount; None: no cap), on the condition that the tenant's override is still
        `override` (None: none). Refused (AlongRefused), the first reason is the override's, the second the
        cap's."""
        if override is None:
            check = "attribute_not_exists(pk)"
            check_values: dict[str, Any] = {}
        else:
            check = "monthly_usd = :m"
            check_values = {":m": override}
        condition: ConditionCheckTypeDef = {
            "TableName": self._table.name,
            "Key": self._budget_key(tenant_id),
            "ConditionExpression": check,
        }
        if check_values:
            condition["ExpressionAttributeValues"] = check_values
        values: dict[str, Any] = {":a": amount, ":one": 1, ":t": tenant_id}
        update: UpdateTypeDef = {
            "TableName": self._table.name,
            "Key": self._usage_key(tenant_id, month),
            "UpdateExpression": "ADD committed_usd :a, reserved_usd :a, #created :one SET tenant_id = :t",
            "ExpressionAttributeNames": {"#created": "count#status#created"},
            "ExpressionAttributeValues": values,
        }
        if headroom is not None:
            update["ConditionExpression"] = "attribute_not_exists(committed_usd) OR committed_usd <= :h"
            values[":h"] = headroom
        return [{"ConditionCheck": condition}, {"Update": update}]

    def settle(self, settlement: Settlement, *, late: bool = False) -> bool:
        """Move the reservation to the actual cost, once per generation; with `late`, add a cost reported
        after the first settlement (once more, money only). False when it was done before."""
        try:
            self.transact(self.settlement(settlement, late=late))
        except AlongRefused as refused:
            if refused_by_condition(refused.reasons[0]):
                return False
            raise
        return True

    def settlement(self, settlement: Settlement, *, late: bool = False) -> list[TransactItem]:
        """Transaction items of a settlement: its marker (refused once it exists), then the month's sums."""
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
        return [{"Put": mark}, {"Update": update}]

    def transact(self, items: list[TransactItem]) -> None:
        """Items on their own (not along with a document's write); a refused condition: AlongRefused."""
        try:
            self._table.meta.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []  # type: ignore[assignment]
            if any(map(refused_by_condition, reasons)):
                raise AlongRefused(reasons) from exc
            raise

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
