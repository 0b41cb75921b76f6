"""moto's DynamoDB, made safe for a threaded server: one table operation at a time.

moto runs `TransactWriteItems` by copying every table the transaction touches, applying its items one by
one and, when one is refused, putting the copies back: a write another request thread made meanwhile is
lost with that rollback (found by the chaos run: a generation was read `failed`, then `queued` again,
after a refused transaction elsewhere in the table). In DynamoDB a transaction is isolated. Here every
table operation of the backend holds one lock, so neither a transaction nor its rollback ever interleaves
with another request. Installed by our moto processes (the local stack, `kling-pipeline aws`); production
code never imports it.

The table copy itself is also skipped when every condition of the transaction holds (checked first, under
the same lock, so nothing can change between the check and the writes): copying the whole table for each
transaction made a create cost O(table size), and a load run's endpoint grew to gigabytes. A transaction
that is refused still takes moto's own path, copy and rollback, so its error answer is moto's.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

_LOCK = threading.RLock()  # reentrant: a transaction calls the backend's own item operations
_OPERATIONS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
    "transact_get_items",
    "batch_get_item",
    "batch_write_item",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)
_MARK = "_kling_one_operation_at_a_time"


def install() -> None:
    """Idempotent."""
    from moto.dynamodb.models import DynamoDBBackend

    with _LOCK:
        if getattr(DynamoDBBackend, _MARK, False):
            return
        for name in _OPERATIONS:
            setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))
        quick = _without_copy_when_all_hold(DynamoDBBackend.transact_write_items)
        setattr(DynamoDBBackend, "transact_write_items", quick)  # noqa: B010
        setattr(DynamoDBBackend, _MARK, True)


def _without_copy_when_all_hold(transact: Callable[..., Any]) -> Callable[..., Any]:
    from moto.dynamodb import models
    from moto.dynamodb.comparisons import get_filter_expression

    def all_conditions_hold(backend: Any, transact_items: list[dict[str, Any]]) -> bool:
        for item in transact_items:
            if len(item) != 1:
                return False
            ((op_type, op),) = item.items()
            if op_type == "Put":
                table = backend.get_table(op["TableName"])
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            expression = op.get("ConditionExpression")
            if expression is None:
                continue
            condition = get_filter_expression(
                expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not condition.expr(backend.get_item(op["TableName"], key)):
                return False
        return True

    @functools.wraps(transact)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        with _LOCK:
            try:
                holds = all_conditions_hold(self, transact_items)
            except Exception:
                holds = False  # anything unusual: moto's own path decides and answers
            if not holds:
                return transact(self, transact_items)
            real_copy = getattr(models, "copy")  # noqa: B009 - the module moto's transaction copies with
            setattr(models, "copy", SimpleNamespace(deepcopy=lambda table: table))  # noqa: B010
            try:
                return transact(self, transact_items)
            finally:
                setattr(models, "copy", real_copy)  # noqa: B010

    return transact_write_items


def _serialized(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    return one_at_a_time
