"""Submit-queue consumer: generations that waited for provider capacity try again."""

from __future__ import annotations

from kling_pipeline.domain.generation import utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.services import lifecycle
from kling_pipeline.services.generations import SubmitMessage, submit
from kling_pipeline.store.generations import get_generation_store

__all__ = ["SubmitMessage", "retry_submission"]


def retry_submission(message: SubmitMessage) -> None:
    """Submit-queue consumer: try again, unless canceled meanwhile or past the deadline."""
    generation = get_generation_store().get(message.generation_id)
    if generation is None or generation.status is not Status.QUEUED:
        return
    if generation.deadline_at is not None and utcnow() >= generation.deadline_at:
        lifecycle.fail(generation.id, "timeout", "no provider had capacity before the deadline")
        return
    submit(generation.model_copy(update={"submit_attempts": max(1, generation.submit_attempts)}))
