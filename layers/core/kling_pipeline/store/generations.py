"""Generations in DynamoDB (a `DocumentStore`), plus callback receipts under the same partition key.

Status changes go through `transition`, which applies `Status.can_move_to` inside the compare-and-set,
so no writer can move a status backwards or record a second outcome.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from kling_pipeline.domain.generation import Generation, GenerationPage
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import NotFound
from kling_pipeline.store.documents import DocumentStore

_RECEIPT_TTL = timedelta(days=30)


class GenerationStore(DocumentStore[Generation]):
    kind = "GEN"
    model = Generation

    def get_for_tenant(self, tenant_id: str, generation_id: str) -> Generation:
        """Another tenant's generation is indistinguishable from a missing one."""
        generation = self.get(generation_id)
        if generation is None or generation.tenant_id != tenant_id:
            raise NotFound(f"generation {generation_id} not found")
        return generation

    def transition(self, generation_id: str, to: Status, **changes: Any) -> Generation | None:
        """Move forward to `to` (and set `changes`) unless the status already moved past it."""

        def mutate(generation: Generation) -> Generation | None:
            if not generation.status.can_move_to(to):
                return None
            return generation.model_copy(update={"status": to, **changes})

        return self.update(generation_id, mutate)

    def list_for_tenant(
        self, tenant_id: str, *, status: Status | None, limit: int, cursor: str | None
    ) -> GenerationPage:
        items, next_cursor = self.page_for_tenant(
            tenant_id, limit=limit, cursor=cursor, status=None if status is None else status.value
        )
        return GenerationPage(items=items, next_cursor=next_cursor)

    def record_callback(self, generation_id: str, provider: str, received_at: datetime) -> None:
        """Keep a receipt of every callback (duplicates included): evidence for support and metrics."""
        self._table.put_item(
            Item={
                "pk": self.partition_key(generation_id),
                "sk": f"CALLBACK#{received_at.isoformat()}#{uuid.uuid4().hex[:8]}",
                "provider": provider,
                "received_at": received_at.isoformat(),
                "expires_at": int((received_at + _RECEIPT_TTL).timestamp()),
            }
        )


@cache
def get_generation_store() -> GenerationStore:
    from kling_pipeline import aws

    return GenerationStore(aws.generations_table())
