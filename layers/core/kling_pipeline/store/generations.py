"""Generations in DynamoDB (a `DocumentStore`); callback receipts share their partition (store.receipts).

Status changes go through `transition`, which applies `Status.can_move_to` inside the compare-and-set,
so no writer can move a status backwards or record a second outcome.

The ingest lease is a top-level attribute beside the document (`ingest_lease_until`, epoch seconds), not part
of it: taking it is one conditional UpdateItem that also returns the generation, so an ingest reads and
claims in a single call, and it never bumps the document's version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from kling_pipeline.domain.generation import Generation, GenerationPage
from kling_pipeline.domain.listing import GenerationFilter
from kling_pipeline.domain.status import TERMINAL, Status
from kling_pipeline.errors import NotFound
from kling_pipeline.store.documents import (
    DocumentStore,
    TransactItem,
    is_condition_failure,
    low_level_doc,
)
from kling_pipeline.store.keys import GENERATION_KIND

_LEASE = "ingest_lease_until"


@dataclass(frozen=True)
class IngestClaim:
    """The generation as stored when the claim was tried (None: no such generation), and whether this
    process now holds the ingest lease (not when it is final, or another worker holds the lease)."""

    generation: Generation | None
    claimed: bool
    # Claimed from an expired lease: its holder died mid-ingest (a live one releases it) and may have left
    # a multipart upload open.
    taken_over: bool = False


class GenerationStore(DocumentStore[Generation]):
    kind = GENERATION_KIND
    model = Generation

    def get_for_tenant(self, tenant_id: str, generation_id: str) -> Generation:
        """Another tenant's generation is indistinguishable from a missing one."""
        generation = self.get(generation_id)
        if generation is None or generation.tenant_id != tenant_id:
            raise NotFound(f"generation {generation_id} not found")
        return generation

    def transition(
        self,
        generation_id: str,
        to: Status,
        *,
        along: Callable[[Generation], list[TransactItem]] | None = None,
        prepare: Callable[[Generation], Generation] | None = None,
        **changes: Any,
    ) -> Generation | None:
        """Move forward to `to` (and set `changes`) unless the status already moved past it; `along`:
        writes that go with the move, in the same transaction (DocumentStore.update); `prepare`: the
        moved generation's last touch, deciding on it as it will be written (what `along` then sees)."""

        def mutate(generation: Generation) -> Generation | None:
            if not generation.status.can_move_to(to):
                return None
            moved = generation.model_copy(update={"status": to, **changes})
            return moved if prepare is None else prepare(moved)

        return self.update(generation_id, mutate, along=along)

    def claim_ingest(self, generation_id: str, *, now: datetime, lease: timedelta) -> IngestClaim:
        """Take the ingest lease of a generation that is not final, reading it in the same call."""
        terminal = {f":t{i}": status.value for i, status in enumerate(sorted(TERMINAL))}
        try:
            item = self._table.update_item(
                Key=self.key(generation_id),
                UpdateExpression="SET #lease = :until",
                ConditionExpression=(
                    f"attribute_exists(pk) AND NOT #s IN ({', '.join(terminal)}) "
                    "AND (attribute_not_exists(#lease) OR #lease < :now)"
                ),
                ExpressionAttributeNames={"#lease": _LEASE, "#s": "status"},
                ExpressionAttributeValues={
                    ":until": int((now + lease).timestamp()),
                    ":now": int(now.timestamp()),
                    **terminal,
                },
                # The old item: the same document (only the lease changes) plus the lease it replaced.
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            current: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if current is None:
                return IngestClaim(None, claimed=False)
            doc_json, version = low_level_doc(current)
            self.remember(generation_id, doc_json, version)
            return IngestClaim(Generation.model_validate_json(doc_json), claimed=False)
        doc_json, version = self.remember_item(generation_id, item)
        generation = Generation.model_validate_json(doc_json)
        return IngestClaim(generation, claimed=True, taken_over=_LEASE in item)

    def release_ingest(self, generation_id: str) -> None:
        try:
            self._table.update_item(
                Key=self.key(generation_id),
                UpdateExpression="REMOVE #lease",
                ConditionExpression="attribute_exists(pk)",  # never create an item out of a key
                ExpressionAttributeNames={"#lease": _LEASE},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def list_for_tenant(
        self,
        tenant_id: str,
        *,
        status: Status | None,
        limit: int,
        cursor: str | None,
        filters: GenerationFilter | None = None,
    ) -> GenerationPage:
        """Newest first; `status` is filtered by DynamoDB, the rest of `filters` on each page read."""
        filters = filters or GenerationFilter()
        status = status or filters.status
        items, next_cursor = self.page_for_tenant(
            tenant_id,
            limit=limit,
            cursor=cursor,
            status=None if status is None else status.value,
            sort_key_range=filters.sort_key_range(),
            where=filters.matches if filters.mode or filters.provider else None,
        )
        return GenerationPage(items=items, next_cursor=next_cursor)


@cache
def get_generation_store() -> GenerationStore:
    from kling_pipeline import aws

    return GenerationStore(aws.generations_table())
