"""End-user webhook bookkeeping in the generations table, under the generation's own partition key.

- `sk = "WEBHOOK"`: one item per generation that has webhooks, counting delivery sequences (the first one
  from the terminal event, one more per redelivery) and keeping the event's time so every sequence sends
  the same payload `timestamp`;
- `sk = "DELIVERY#<attempted at>#<sequence>.<attempt>"`: one item per attempt, so a query on the prefix,
  descending, lists attempts newest first. Attempts expire with the table's TTL after 30 days.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel

from kling_pipeline.store.documents import is_condition_failure
from kling_pipeline.store.generations import GenerationStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_MARKER_SK = "WEBHOOK"
_DELIVERY_PREFIX = "DELIVERY#"
_ATTEMPT_TTL = timedelta(days=30)
_MAX_LISTED = 100

Outcome = Literal["delivered", "failed", "gone", "rejected"]


class DeliveryAttempt(BaseModel):
    """One POST to a tenant's webhook_url (or the refusal to make it), as `GET …/deliveries` shows it."""

    webhook_id: str
    event_type: str
    sequence: int
    attempt: int
    attempted_at: datetime
    url: str
    host: str
    # delivered: 2xx · failed: anything else (retried unless last) · gone: 410, never retried ·
    # rejected: the URL is not safe to call at send time (https only, public addresses), never retried.
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    duration_ms: int
    next_retry_at: datetime | None = None
    dead_lettered: bool = False


class DeliverySequence(BaseModel):
    number: int
    occurred_at: datetime


def _sortable(moment: datetime) -> str:
    """Fixed-width UTC time (isoformat drops zero microseconds, which would break the sort order)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DeliveryStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def open_first_sequence(self, generation_id: str, occurred_at: datetime) -> DeliverySequence | None:
        """Sequence 1, or None when the terminal event already scheduled one (an announce retried)."""
        try:
            self._table.put_item(
                Item={
                    "pk": GenerationStore.partition_key(generation_id),
                    "sk": _MARKER_SK,
                    "sequences": 1,
                    "occurred_at": occurred_at.isoformat(),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return DeliverySequence(number=1, occurred_at=occurred_at)

    def first_sequence(self, generation_id: str) -> DeliverySequence | None:
        """Sequence 1 as an earlier announce opened it (its occurred_at keeps the webhook body the same)."""
        item = self._table.get_item(
            Key={"pk": GenerationStore.partition_key(generation_id), "sk": _MARKER_SK}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return DeliverySequence(number=1, occurred_at=datetime.fromisoformat(str(item["occurred_at"])))

    def forget_first_sequence(self, generation_id: str) -> None:
        """Undo `open_first_sequence` when its message could not be queued, so a retry schedules it."""
        try:
            self._table.delete_item(
                Key={"pk": GenerationStore.partition_key(generation_id), "sk": _MARKER_SK},
                ConditionExpression="#n = :one",
                ExpressionAttributeNames={"#n": "sequences"},
                ExpressionAttributeValues={":one": 1},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def open_next_sequence(self, generation_id: str, occurred_at: datetime) -> DeliverySequence:
        """A new sequence number (redelivery); `occurred_at` is kept from the first one when there is one."""
        response = self._table.update_item(
            Key={"pk": GenerationStore.partition_key(generation_id), "sk": _MARKER_SK},
            UpdateExpression="ADD #n :one SET occurred_at = if_not_exists(occurred_at, :at)",
            ExpressionAttributeNames={"#n": "sequences"},
            ExpressionAttributeValues={":one": 1, ":at": occurred_at.isoformat()},
            ReturnValues="ALL_NEW",
        )
        item = response["Attributes"]
        return DeliverySequence(
            number=int(str(item["sequences"])), occurred_at=datetime.fromisoformat(str(item["occurred_at"]))
        )

    def record(self, generation_id: str, attempt: DeliveryAttempt) -> None:
        at = _sortable(attempt.attempted_at)
        self._table.put_item(
            Item={
                "pk": GenerationStore.partition_key(generation_id),
                "sk": f"{_DELIVERY_PREFIX}{at}#{attempt.sequence}.{attempt.attempt}",
                "doc": attempt.model_dump_json(),
                "expires_at": int((attempt.attempted_at + _ATTEMPT_TTL).timestamp()),
            }
        )

    def list_attempts(self, generation_id: str, *, limit: int = _MAX_LISTED) -> list[DeliveryAttempt]:
        """Attempts, newest first (at most `limit`)."""
        attempts: list[DeliveryAttempt] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": GenerationStore.partition_key(generation_id),
                ":prefix": _DELIVERY_PREFIX,
            },
            "ScanIndexForward": False,
        }
        while len(attempts) < limit:
            page = self._table.query(**query, Limit=limit - len(attempts))
            attempts.extend(DeliveryAttempt.model_validate_json(str(item["doc"])) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return attempts


@cache
def get_delivery_store() -> DeliveryStore:
    from kling_pipeline import aws

    return DeliveryStore(aws.generations_table())
