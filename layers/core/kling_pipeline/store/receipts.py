"""Callback receipts: one item per provider callback (duplicates included) under the generation's
partition key, kept 30 days as evidence for support and metrics.

Apart from the generation store so the callback handler, which only writes receipts, does not import
the generation models.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from kling_pipeline.store.keys import GENERATION_KIND, partition_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_RECEIPT_TTL = timedelta(days=30)


class CallbackReceipts:
    def __init__(self, table: Table) -> None:
        self._table = table

    def record(self, generation_id: str, provider: str, received_at: datetime) -> None:
        self._table.put_item(
            Item={
                "pk": partition_key(GENERATION_KIND, generation_id),
                "sk": f"CALLBACK#{received_at.isoformat()}#{uuid.uuid4().hex[:8]}",
                "provider": provider,
                "received_at": received_at.isoformat(),
                "expires_at": int((received_at + _RECEIPT_TTL).timestamp()),
            }
        )


@cache
def get_callback_receipts() -> CallbackReceipts:
    from kling_pipeline import aws

    return CallbackReceipts(aws.generations_table())
