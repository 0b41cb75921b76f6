"""Provider-account slots in DynamoDB: at most `concurrency` tasks in flight per account, across every
Lambda at once (conditional writes; nothing counted in memory).

    pk "ACCOUNT#<provider>#<account>", sk "SLOT#<nnn>"   holder (generation id), lease_until, taken_at
    pk "ACCOUNT#<provider>#<account>", sk "STATE"         effective_limit, backoff_until, raise_after,
                                                          probe_s, throttles

A slot is free when it has no holder or its lease has run out, so a holder that crashed between steps
loses it by itself; taking one is a conditional put on one slot item ("free, or already mine"), so two
writers can never hold the same slot and a retried take by the same generation gets the same slot back.
An account that answers "too many tasks" anyway (it is shared with someone else) is backed off for a
while with a lowered effective limit (what it really took); after ten backoffs without a refusal the limit
is doubled, and so on up to the configured one, so a limit that is simply set too high settles near the
real one instead of being hit again and again, and a brief squeeze is over in a few steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from kling_pipeline.store.documents import TransactItem, is_condition_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_dynamodb.type_defs import ConditionCheckTypeDef, PutTypeDef, UpdateTypeDef

_BACKOFF_MAX_S = 600.0
_PROBE_EVERY = 10  # backoffs of quiet before one more slot is tried


@dataclass(frozen=True)
class Slot:
    """A held slot: the account it belongs to and the generation holding it."""

    provider: str
    account: str
    index: int
    holder: str


@dataclass
class AccountView:
    """One account's slots and throttle state as read in one query."""

    provider: str
    account: str
    limit: int
    holders: dict[int, tuple[str, float]] = field(default_factory=dict)  # index → (holder, lease_until)
    effective_limit: int | None = None  # lowered after a throttle; None: the configured limit
    backoff_until: float = 0.0
    raise_after: float = 0.0
    probe_s: float = 0.0  # quiet time between two raises of a lowered limit
    throttles: int = 0

    def live(self, now: float) -> dict[int, str]:
        """Slots held by someone whose lease has not run out: index → holder."""
        return {index: holder for index, (holder, until) in self.holders.items() if until > now}

    def in_flight(self, now: float) -> int:
        return len(self.live(now))

    def usable_limit(self, now: float) -> int:
        """How many slots may be held now: 0 while backed off, else the (possibly lowered) limit, plus one
        to probe with once a quiet period has passed (`recovered` keeps it, `throttled` takes it back).
        The probe needs no create to have succeeded first: tasks the account runs for others, or ours that
        outlive us (a timeout), may hold every slot of a lowered limit for a long time."""
        if now < self.backoff_until:
            return 0
        limit = min(self.limit, self.effective_limit or self.limit)
        if self.effective_limit is not None and now >= self.raise_after:
            limit = min(self.limit, limit + 1)
        return limit

    def free(self, now: float) -> int:
        return max(0, self.usable_limit(now) - self.in_flight(now))

    def holds(self, holder: str, now: float) -> int | None:
        """The index of `holder`'s live slot here, if it has one."""
        return next((index for index, name in self.live(now).items() if name == holder), None)


class SlotStore:
    """Slot items of every provider account in the generations table (single-table design)."""

    def __init__(self, table: Table, clock: Any = time.time) -> None:
        self._table = table
        self._clock = clock

    @staticmethod
    def partition(provider: str, account: str) -> str:
        return f"ACCOUNT#{provider}#{account}"

    def now(self) -> float:
        return float(self._clock())

    def view(self, provider: str, account: str, limit: int) -> AccountView:
        """The account's slots and state (one strongly consistent query)."""
        view = AccountView(provider, account, limit)
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(self.partition(provider, account)),
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**query)
            for item in page["Items"]:
                sk = str(item["sk"])
                if sk == "STATE":
                    limit_value = item.get("effective_limit")
                    view.effective_limit = None if limit_value is None else int(str(limit_value))
                    view.backoff_until = float(str(item.get("backoff_until", 0)))
                    view.raise_after = float(str(item.get("raise_after", 0)))
                    view.probe_s = float(str(item.get("probe_s", 0)))
                    view.throttles = int(str(item.get("throttles", 0)))
                elif sk.startswith("SLOT#") and item.get("holder"):
                    view.holders[int(sk[5:])] = (str(item["holder"]), float(str(item.get("lease_until", 0))))
            if "LastEvaluatedKey" not in page:
                return view
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def acquire(self, view: AccountView, holder: str, *, lease_s: float) -> Slot | None:
        """Take a free slot of the viewed account for `holder` (or its own again); None when full."""
        now = self.now()
        own = view.holds(holder, now)
        if own is not None:
            return Slot(view.provider, view.account, own, holder)
        live = view.live(now)
        if len(live) >= view.usable_limit(now):
            return None
        for index in range(view.usable_limit(now)):
            if index in live:
                continue
            if self._take(view, index, holder, now=now, lease_s=lease_s):
                view.holders[index] = (holder, now + lease_s)
                return Slot(view.provider, view.account, index, holder)
            live = view.live(now)
        return None

    def _take(self, view: AccountView, index: int, holder: str, *, now: float, lease_s: float) -> bool:
        try:
            self._table.put_item(
                **self._take_write(view.provider, view.account, index, holder, now=now, lease_s=lease_s)
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def _take_write(
        self, provider: str, account: str, index: int, holder: str, *, now: float, lease_s: float
    ) -> dict[str, Any]:
        """The conditional put that takes slot `index` for `holder`: free, run out, or its own already."""
        return {
            "Item": {
                "pk": self.partition(provider, account),
                "sk": f"SLOT#{index:03d}",
                "holder": holder,
                "lease_until": _number(now + lease_s),
                "taken_at": _number(now),
            },
            "ConditionExpression": "attribute_not_exists(holder) OR lease_until < :now OR holder = :me",
            "ExpressionAttributeValues": {":now": _number(now), ":me": holder},
        }

    def take_items(
        self, provider: str, account: str, index: int, holder: str, *, lease_s: float
    ) -> list[TransactItem]:
        """Taking slot `index` as transaction items, for a write that takes it along (the create): the
        account is not backed off and `index` is below its effective limit (a lowered limit's probe slot
        is left to a take that reads the account), and the slot is free."""
        now = self.now()
        state: ConditionCheckTypeDef = {
            "TableName": self._table.name,
            "Key": {"pk": self.partition(provider, account), "sk": "STATE"},
            "ConditionExpression": "attribute_not_exists(pk) OR (backoff_until < :now "
            "AND (attribute_not_exists(effective_limit) OR effective_limit > :index))",
            "ExpressionAttributeValues": {":now": _number(now), ":index": index},
        }
        write = self._take_write(provider, account, index, holder, now=now, lease_s=lease_s)
        take = cast("PutTypeDef", {"TableName": self._table.name, **write})
        return [{"ConditionCheck": state}, {"Put": take}]

    def release(
        self, provider: str, account: str, holder: str, *, limit: int, index: int | None = None
    ) -> bool:
        """Free `holder`'s slot on the account (idempotent: False when it holds none). `index`: the slot it
        took, when known (one conditional write instead of a query first)."""
        if index is None:
            view = self.view(provider, account, limit)
            index = next((i for i, (name, _) in view.holders.items() if name == holder), None)
        if index is None:
            return False
        try:
            self._table.update_item(**self._release_write(provider, account, index, holder))
        except ClientError as exc:
            if is_condition_failure(exc):
                return False  # its lease ran out and someone else holds the slot now
            raise
        return True

    def _release_write(self, provider: str, account: str, index: int, holder: str) -> dict[str, Any]:
        return {
            "Key": {"pk": self.partition(provider, account), "sk": f"SLOT#{index:03d}"},
            "UpdateExpression": "REMOVE holder, lease_until, taken_at",
            "ConditionExpression": "holder = :me",
            "ExpressionAttributeValues": {":me": holder},
        }

    def release_item(self, provider: str, account: str, index: int, holder: str) -> TransactItem:
        """`release` of a known slot as a transaction item, for a write that frees it along (the final
        status); refused when `holder` no longer holds it."""
        write = self._release_write(provider, account, index, holder)
        return {"Update": cast("UpdateTypeDef", {"TableName": self._table.name, **write})}

    def throttled(self, view: AccountView, *, base_backoff_s: float) -> None:
        """The account refused a create for its limit although we held a slot: back off and lower the
        effective limit to what it really took (the slots held before this one, at least 1)."""
        now = self.now()
        throttles = view.throttles + 1
        current = view.effective_limit or view.limit
        lowered = max(1, min(current, view.in_flight(now) - 1))  # in flight includes the refused attempt
        backoff = min(_BACKOFF_MAX_S, base_backoff_s * 2 ** min(throttles - 1, 10))
        self._table.put_item(
            Item={
                "pk": self.partition(view.provider, view.account),
                "sk": "STATE",
                "effective_limit": lowered,
                "backoff_until": _number(now + backoff),
                "raise_after": _number(now + _PROBE_EVERY * backoff),
                "probe_s": _number(_PROBE_EVERY * backoff),
                "throttles": throttles,
            }
        )
        view.effective_limit, view.backoff_until, view.throttles = lowered, now + backoff, throttles
        view.raise_after, view.probe_s = now + _PROBE_EVERY * backoff, _PROBE_EVERY * backoff

    def recovered(self, view: AccountView) -> None:
        """A create went through: long enough after the last refusal, try one more slot (up to the
        configured limit, where the account's state is forgotten)."""
        if view.effective_limit is None or self.now() < max(view.backoff_until, view.raise_after):
            return
        key = {"pk": self.partition(view.provider, view.account), "sk": "STATE"}
        raised = view.effective_limit * 2  # a limit that was only briefly lower comes back in a few steps
        try:
            if raised >= view.limit:
                self._table.delete_item(
                    Key=key,
                    ConditionExpression="effective_limit = :old",
                    ExpressionAttributeValues={":old": view.effective_limit},
                )
                view.effective_limit, view.throttles = None, 0
                return
            pause = view.probe_s or _BACKOFF_MAX_S
            self._table.update_item(
                Key=key,
                UpdateExpression="SET effective_limit = :new, raise_after = :next",
                ConditionExpression="effective_limit = :old",
                ExpressionAttributeValues={
                    ":old": view.effective_limit,
                    ":new": raised,
                    ":next": _number(self.now() + pause),
                },
            )
            view.effective_limit = raised
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise  # another writer changed it first: theirs stands

    def forget(self, provider: str, account: str) -> None:
        """Drop what throttles taught about the account (its plan was upgraded, or a test is over)."""
        self._table.delete_item(Key={"pk": self.partition(provider, account), "sk": "STATE"})


def _number(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))


@cache
def get_slot_store() -> SlotStore:
    from kling_pipeline import aws

    return SlotStore(aws.generations_table())
