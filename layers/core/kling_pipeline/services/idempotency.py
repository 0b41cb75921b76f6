"""`Idempotency-Key` for POST routes, on Powertools idempotency with the stack's DynamoDB table.

Same tenant + key + body within 24 h returns the first response without running the operation again;
the same key with another body is a 409; a replay that arrives while the first request is still running
waits for it (bounded) and then returns its response. Powertools' idempotency utility (15-20 ms of a cold
start) and its persistence layer are loaded on the first request that carries a key: the API's reads, and
creates without a key, never use them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel

from kling_pipeline import aws
from kling_pipeline.config import get_settings
from kling_pipeline.errors import Conflict, InvalidInput
from kling_pipeline.store.request_keys import REQUEST_KEY_WINDOW

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext

IDEMPOTENCY_WINDOW_S = int(REQUEST_KEY_WINDOW.total_seconds())
IN_FLIGHT_WAIT_S = 20.0
MAX_KEY_LENGTH = 255

# (body, tenant_id, Idempotency-Key or None) -> the answer's body
Operation = Callable[[dict[str, Any], str, str | None], dict[str, Any]]

# Set by the wrapped operation when it actually runs; still False afterwards means Powertools answered
# from the stored record (a replay). A ContextVar, because the local stack runs handlers on threads.
_ran: ContextVar[bool] = ContextVar("idempotent_operation_ran", default=False)


class Once(NamedTuple):
    """The operation's answer and whether it is the stored answer of an earlier request."""

    body: dict[str, Any]
    replayed: bool


class IdempotentCall(BaseModel):
    """What the idempotency record is keyed on (tenant + key) and validated against (the body)."""

    operation: str
    tenant_id: str
    key: str
    body: dict[str, Any]


class _Invocation:
    """The current invocation's Lambda context, handed to Powertools when a keyed request first needs it."""

    context: LambdaContext | None = None


_invocation = _Invocation()


@cache
def idempotency_config() -> IdempotencyConfig:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(
        event_key_jmespath="[operation, tenant_id, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_WINDOW_S,
    )


@cache
def persistence_layer() -> DynamoDBPersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    # A client of the process's one boto3 session: Powertools would open a session of its own (tens of ms).
    return DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table, boto3_client=aws.dynamodb())


def register_lambda_context(context: LambdaContext) -> None:
    """Lets Powertools expire an in-progress record when the invocation that holds it times out (passed
    on to Powertools by `run_once`, before a keyed operation runs)."""
    _invocation.context = context


@cache
def idempotent(operation: Operation) -> Callable[..., dict[str, Any]]:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="call", persistence_store=persistence_layer(), config=idempotency_config()
    )
    def run(call: IdempotentCall) -> dict[str, Any]:
        _ran.set(True)
        return operation(call.body, call.tenant_id, call.key)

    return run  # type: ignore[no-any-return]


def run_once(
    operation: Operation, *, name: str, tenant_id: str, key: str | None, body: dict[str, Any]
) -> Once:
    """`operation(body, tenant_id)`, exactly once per (tenant, key) when a key is given; `replayed` says
    the answer is the stored one (the API then sends `Idempotent-Replayed: true`)."""
    if key is None:
        return Once(operation(body, tenant_id, None), replayed=False)
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput.for_field("Idempotency-Key", f"must be 1-{MAX_KEY_LENGTH} characters")
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    if _invocation.context is not None:
        idempotency_config().register_lambda_context(_invocation.context)
    call = IdempotentCall(operation=name, tenant_id=tenant_id, key=key, body=body)
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while True:
        token = _ran.set(False)
        try:
            answer = idempotent(operation)(call=call)
            return Once(answer, replayed=not _ran.get())
        except IdempotencyValidationError as exc:
            raise Conflict(f"Idempotency-Key {key!r} was already used with a different request body") from exc
        except IdempotencyAlreadyInProgressError as exc:
            if time.monotonic() > deadline:
                raise Conflict(
                    "a request with this Idempotency-Key is still in progress; retry shortly"
                ) from exc
            time.sleep(0.25)
        finally:
            _ran.reset(token)
