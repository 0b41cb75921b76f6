"""moto's DynamoDB, made safe for a threaded server: one table operation at a time.

moto runs `TransactWriteItems` by copying every table the transaction touches, applying its items one by
one and, when one is refused, putting the copies back: a write another request thread made meanwhile is
lost with that rollback (found by the chaos run: a generation was read `failed`, then `queued` again,
after a refused transaction elsewhere in the table). In DynamoDB a transaction is isolated. Here every
table operation of the backend holds one lock, so neither a transaction nor its rollback ever interleaves
with another request. Installed by our moto processes (the local stack, `kling-pipeline aws`); production
code never imports it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
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
        setattr(DynamoDBBackend, _MARK, True)


def _serialized(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    return one_at_a_time
