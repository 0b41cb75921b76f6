"""Which generation a client's `Idempotency-Key` made, kept beside the generations.

Powertools' idempotency record answers a replay once the first request has finished. A create that crashed
after writing its generation never finishes: its in-progress record expires with the invocation, and the
retry runs the create again. Without this claim that retry made a second generation (a second paid task for
one client request; found by the chaos run). With it, the retry continues the generation the crashed run
claimed, whether or not that run got as far as writing it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kling_pipeline.store.documents import is_condition_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_SK = "REQUEST_KEY"
REQUEST_KEY_WINDOW = timedelta(hours=24)  # Powertools' idempotency window: a key is reusable after it


class RequestKeys:
    def __init__(self, table: Table) -> None:
        self._table = table

    def claim(self, tenant_id: str, key: str, generation_id: str, *, now: datetime) -> str:
        """`generation_id` when (tenant, key) is new or its claim has expired; else the id claimed first.

        Our own put, applied with its answer lost and retried, finds our own id: the same answer.
        """
        digest = hashlib.sha256(f"{tenant_id}\n{key}".encode()).hexdigest()
        try:
            self._table.put_item(
                Item={
                    "pk": f"REQKEY#{digest}",
                    "sk": _SK,
                    "generation_id": generation_id,
                    "expires_at": int((now + REQUEST_KEY_WINDOW).timestamp()),
                },
                # DynamoDB's TTL deletes late; an expired claim counts as gone, like Powertools' record.
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": int(now.timestamp())},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            earlier: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
            return str(earlier["generation_id"]["S"])
        return generation_id


@cache
def get_request_keys() -> RequestKeys:
    from kling_pipeline import aws

    return RequestKeys(aws.generations_table())
