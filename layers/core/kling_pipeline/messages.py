"""The bodies of the pipeline's own queue messages, apart from the services that consume them: a producer
(the callback handler sends ingest messages) imports these few models, not the consumer's code.

`SqsRecord[Body]` is what the queue consumers validate each SQS record into (kling_pipeline.batch): the
two fields they read. Powertools' own `SqsRecordModel` would import every event model of its parser,
~80 ms of each consumer's cold start.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Json

Body = TypeVar("Body", bound=BaseModel)


class SqsRecord(BaseModel, Generic[Body]):
    messageId: str  # SQS's own name: failures are reported by it (kling_pipeline.batch)
    body: Json[Body]


class SqsTextRecord(BaseModel):
    """A record whose body is not one of our messages (S3 notifications): the text as sent, and the queue."""

    messageId: str
    body: str
    eventSourceARN: str


class IngestMessage(BaseModel):
    generation_id: str
    reason: str = "callback"
    # From a callback: the provider and the task id its body named (untrusted; see `unconfirmed.adopt`).
    provider: str | None = None
    task_id: str | None = None


class SubmitMessage(BaseModel):
    generation_id: str
