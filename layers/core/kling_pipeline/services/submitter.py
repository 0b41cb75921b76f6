"""Submit-queue consumer: generations that waited for provider capacity try again, and the safety net
every create sends (due at the first poll time) finishes what a crashed or failed create left undone and
starts the fallback state machine for a generation whose callback has not come.

The safety net is what keeps "every accepted generation ends in exactly one final state" without a state
machine per generation: it is on the queue before the generation is written, and a Lambda that crashes while
handling it leaves it on the queue, so it comes back until the fallback is started (StartExecution is
idempotent by name) or the generation is final."""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline import messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.messages import SubmitMessage
from kling_pipeline.observability import metrics
from kling_pipeline.services import capacity, lifecycle
from kling_pipeline.services.generations import release_submit_lease, submit
from kling_pipeline.store.generations import get_generation_store

__all__ = ["SubmitMessage", "retry_submission"]


def retry_submission(message: SubmitMessage) -> None:
    """A queued generation goes (back) into its tenant's line and the free slots are refilled (unless it is
    past the deadline); otherwise make sure what the creating process may not have finished is done: a
    terminal generation is announced (and its slot freed), and one still running by now (its callback is
    late or lost) gets the fallback, polling at what is left of the first poll wait. `REFILL` (a finished
    task's nudge, or a backoff's end) only refills.

    A queued generation is looked at only under its submit lease: the create's own submit may still be
    running when its safety net comes due (found by the chaos run: both submitted, the safety net's answer
    lost the race, and nobody watched the generation any more), and so may a redelivered message's."""
    if message.generation_id == capacity.REFILL:
        capacity.refill(start=submit)
        return
    store = get_generation_store()
    generation = store.get(message.generation_id)
    if generation is None:
        return
    if generation.status.is_terminal:
        # A crash may have come between the final write and the release: free its slot (and refill).
        capacity.release(generation)
        if not lifecycle.announce(generation):
            raise lifecycle.AnnouncementPending(generation.id)  # the message comes back to look again
        return
    if generation.status is not Status.QUEUED:
        waited = (utcnow() - generation.created_at).total_seconds()
        first_wait = max(1, int(get_settings().fallback_first_poll_s - waited))
        messaging.start_fallback(generation.id, first_wait_s=first_wait)
        return
    if generation.deadline_at is not None and utcnow() >= generation.deadline_at:
        capacity.dequeue(generation)
        lifecycle.fail(generation.id, "timeout", "no provider had capacity before the deadline")
        return
    leased = store.update(generation.id, _take_submit_lease)
    if leased is None:
        current = store.get(generation.id)
        if current is not None and current.status is Status.QUEUED:
            _look_again_after_lease(current)
        elif current is not None:
            retry_submission(message)  # it moved on meanwhile: look at it as it is now
        return
    generation = leased
    views = capacity.account_views()  # read once: for the check below and the refill
    if capacity.holds_slot(generation, views):
        # A create that crashed after taking its slot: finish it (adopting a task it may have created).
        submit(generation.model_copy(update={"submit_attempts": max(1, generation.submit_attempts)}))
        return
    capacity.enqueue(generation, generation.estimated_cost.provider if generation.estimated_cost else None)
    capacity.try_refill(submit, views)  # its own timer below must be armed whatever the refill met
    current = store.get(generation.id)
    if current is None:
        return
    if current.status is Status.QUEUED:
        release_submit_lease(leased)
        _look_again_later(current)
    else:
        # This refill started it (or it ended meanwhile): this message is the last look it would get, so
        # watch it as it is now (found by the chaos run: started here, its callbacks lost, never polled).
        retry_submission(message)


def _look_again_later(generation: Generation) -> None:
    """A waiting generation's own timer, a backstop for lost nudges: after half its age so far (within
    the submit retry bounds), so a long queue costs a few messages per generation, not one per second."""
    settings = get_settings()
    age = (utcnow() - generation.created_at).total_seconds()
    metrics.add_metric(name="OldestQueuedSeconds", unit=MetricUnit.Seconds, value=age)  # the queue alarm
    delay = int(min(settings.submit_retry_max_s, max(settings.submit_retry_base_s, age / 2)))
    messaging.send(settings.submit_queue_url, SubmitMessage(generation_id=generation.id), delay_s=delay)


def _take_submit_lease(current: Generation) -> Generation | None:
    now = utcnow()
    lease = current.submit_lease_until
    if current.status is not Status.QUEUED or (lease is not None and lease > now):
        return None
    until = now + timedelta(seconds=get_settings().submit_lease_s)
    return current.model_copy(update={"submit_lease_until": until})


def _look_again_after_lease(generation: Generation) -> None:
    """Another submitter holds the generation (or held it and died): come back when its lease ends."""
    lease = generation.submit_lease_until or utcnow()
    delay = max(1, int((lease - utcnow()).total_seconds()) + 1)
    messaging.send(get_settings().submit_queue_url, SubmitMessage(generation_id=generation.id), delay_s=delay)
