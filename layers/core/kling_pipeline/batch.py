"""Partial batch failures for the SQS consumers: each record on its own, failed records reported by id.

What Powertools' `BatchProcessor(EventType.SQS, model=…)` + `process_partial_response` do for a queue
consumer, and nothing else: validate each record into the consumer's model, call its handler, collect the
`messageId` of every record that did not parse or raised, answer `{"batchItemFailures": [...]}` (Lambda
deletes the others), and raise when every record failed (so the whole batch is retried, as Powertools
does). Same answers, same exceptions (Powertools' own, imported on that rare path).

Why not Powertools' package itself: importing `aws_lambda_powertools.utilities.batch` loads asyncio (for
its async processor), every event-source data class, and, when pydantic is already loaded, every model
of its parser — 15-25 ms of CPU of each consumer's cold start (measured on the build against the same
floor, bench/cold_import: 5-8% of a consumer's floor, most of the 10% margin issue 10 allows) for a loop
of a few lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel, ValidationError

from kling_pipeline.observability import logger


class ItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    """The `ReportBatchItemFailures` answer (Powertools' `PartialItemFailureResponse`)."""

    batchItemFailures: list[ItemFailure]


R = TypeVar("R", bound=BaseModel)


def process_sqs_batch(event: dict[str, Any], model: type[R], handle: Callable[[R], object]) -> BatchResponse:
    """Each record of `event` validated into `model` (a pydantic model with `messageId`) and handed to
    `handle`; the ids of the records that failed either step are reported, the others leave the queue."""
    records = event.get("Records")
    if not records or not isinstance(records, list):
        from aws_lambda_powertools.utilities.batch.exceptions import UnexpectedBatchTypeError

        raise UnexpectedBatchTypeError("Unexpected batch event type: an SQS event has a list of Records")
    failed: list[ItemFailure] = []
    errors: list[tuple[Any, ...]] = []
    for raw in records:
        try:
            handle(model.model_validate(raw))
        except Exception as exc:  # a failing record must never fail its neighbours
            errors.append((type(exc), exc, exc.__traceback__))
            what = "did not parse" if isinstance(exc, ValidationError) else "failed"
            logger.warning(
                f"record {what}; left on the queue", extra={"message_id": raw.get("messageId")}, exc_info=exc
            )
            failed.append({"itemIdentifier": raw["messageId"]})
    if failed and len(failed) == len(records):
        _raise_whole_batch_failed(errors)
    return {"batchItemFailures": failed}


def _raise_whole_batch_failed(errors: Sequence[tuple[Any, ...]]) -> None:
    """Every record failed: raise (Lambda retries the whole batch) with each record's error attached."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    raise BatchProcessingError(
        msg=f"All records failed processing. {len(errors)} individual errors logged separately below.",
        child_exceptions=list(errors),  # type: ignore[arg-type]
    )
