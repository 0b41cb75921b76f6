"""The bodies of the pipeline's own queue messages, apart from the services that consume them: a producer
(the callback handler sends ingest messages) imports these few models, not the consumer's code."""

from __future__ import annotations

from pydantic import BaseModel


class IngestMessage(BaseModel):
    generation_id: str
    reason: str = "callback"
    # From a callback: the provider and the task id its body named (untrusted; see `unconfirmed.adopt`).
    provider: str | None = None
    task_id: str | None = None


class SubmitMessage(BaseModel):
    generation_id: str
