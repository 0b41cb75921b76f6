"""Generations in DynamoDB: one item per generation plus callback receipts under the same key.

The resource is stored whole as JSON (`doc`) beside the few attributes conditions and indexes need.
Every change is a compare-and-set on `version`, and callers decide with `Status.can_move_to`, so two
writers (a callback and the fallback poller, a retry and its original) can never move a status backwards
or record two different outcomes.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kling_pipeline.domain.generation import Generation, GenerationPage, utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_GEN_SK = "GEN"
_RECEIPT_TTL = timedelta(days=30)
_MAX_CAS_ATTEMPTS = 8

Mutation = Callable[[Generation], Generation | None]


def _pk(generation_id: str) -> str:
    return f"GEN#{generation_id}"


def _tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#GEN"


class GenerationStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def create(self, generation: Generation) -> None:
        try:
            self._table.put_item(
                Item=self._item(generation, version=1),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise Conflict(f"generation {generation.id} already exists") from exc
            raise

    def get(self, generation_id: str) -> Generation | None:
        found = self._get_item(generation_id)
        return None if found is None else found[0]

    def get_for_tenant(self, tenant_id: str, generation_id: str) -> Generation:
        """Another tenant's generation is indistinguishable from a missing one."""
        generation = self.get(generation_id)
        if generation is None or generation.tenant_id != tenant_id:
            raise NotFound(f"generation {generation_id} not found")
        return generation

    def update(self, generation_id: str, mutate: Mutation) -> Generation | None:
        """Apply `mutate` with optimistic locking; it returns the new resource, or None for "no change".

        Returns the stored resource after the change, or None when `mutate` declined (or it vanished).
        """
        for _ in range(_MAX_CAS_ATTEMPTS):
            found = self._get_item(generation_id)
            if found is None:
                return None
            current, version = found
            changed = mutate(current.model_copy(deep=True))
            if changed is None:
                return None
            changed.updated_at = utcnow()
            try:
                self._table.put_item(
                    Item=self._item(changed, version=version + 1),
                    ConditionExpression="version = :v",
                    ExpressionAttributeValues={":v": version},
                )
                return changed
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise
        raise Conflict(f"generation {generation_id} is changing too often; try again")

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
        """Newest first. With a status filter, keeps reading pages until `limit` matches or the end."""
        items: list[Generation] = []
        start_key = _decode_cursor(cursor)
        if start_key and start_key.get("gsi1pk") != _tenant_pk(tenant_id):
            raise InvalidInput.for_field("cursor", "is not a cursor this API returned")
        while len(items) < limit:
            query: dict[str, Any] = {
                "IndexName": "ByTenant",
                "KeyConditionExpression": "gsi1pk = :pk",
                "ExpressionAttributeValues": {":pk": _tenant_pk(tenant_id)},
                "ScanIndexForward": False,
                "Limit": limit - len(items),
            }
            if status is not None:
                query["FilterExpression"] = "#s = :status"
                query["ExpressionAttributeNames"] = {"#s": "status"}
                query["ExpressionAttributeValues"][":status"] = status.value
            if start_key:
                query["ExclusiveStartKey"] = start_key
            page = self._table.query(**query)
            items.extend(Generation.model_validate_json(str(item["doc"])) for item in page["Items"])
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                break
        return GenerationPage(items=items, next_cursor=_encode_cursor(start_key) if start_key else None)

    def record_callback(self, generation_id: str, provider: str, received_at: datetime) -> None:
        """Keep a receipt of every callback (duplicates included): evidence for support and metrics."""
        self._table.put_item(
            Item={
                "pk": _pk(generation_id),
                "sk": f"CALLBACK#{received_at.isoformat()}#{uuid.uuid4().hex[:8]}",
                "provider": provider,
                "received_at": received_at.isoformat(),
                "expires_at": int((received_at + _RECEIPT_TTL).timestamp()),
            }
        )

    def _get_item(self, generation_id: str) -> tuple[Generation, int] | None:
        response = self._table.get_item(Key={"pk": _pk(generation_id), "sk": _GEN_SK}, ConsistentRead=True)
        item = response.get("Item")
        if item is None:
            return None
        return Generation.model_validate_json(str(item["doc"])), int(str(item["version"]))

    @staticmethod
    def _item(generation: Generation, *, version: int) -> dict[str, Any]:
        return {
            "pk": _pk(generation.id),
            "sk": _GEN_SK,
            "gsi1pk": _tenant_pk(generation.tenant_id),
            "gsi1sk": f"{generation.created_at.isoformat()}#{generation.id}",
            "tenant_id": generation.tenant_id,
            "status": generation.status.value,
            "version": version,
            "doc": generation.model_dump_json(),
        }


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> dict[str, Any] | None:
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


@cache
def get_generation_store() -> GenerationStore:
    from kling_pipeline import aws

    return GenerationStore(aws.generations_table())
