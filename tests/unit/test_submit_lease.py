"""One submitter at a time per queued generation: the create's safety net can come due while the create's
own submit is still running (a slow provider), and a submit-queue message can be delivered again while its
first delivery is still submitting. Found by the chaos run: two submits raced, the loser's answer ended the
safety net's chain, and nobody watched the generation any more."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.providers.base import ProviderName, ProviderTask
from kling_pipeline.services import generations, submitter
from kling_pipeline.services.generations import SubmitMessage
from kling_pipeline.services.submitter import retry_submission
from kling_pipeline.store.generations import get_generation_store

from .conftest import stored_generation
from .test_safety_net import execution_exists


@pytest.fixture
def submits(monkeypatch: pytest.MonkeyPatch) -> list[Generation]:
    """The provider hand-off, recorded instead of called: what is under test is who may call it."""
    submitted: list[Generation] = []

    def submit(generation: Generation, **_: object) -> Generation:
        submitted.append(generation)
        moved = get_generation_store().transition(
            generation.id,
            Status.SUBMITTED,
            provider="kling",
            provider_task_id="tk_1",
            submit_lease_until=None,
        )
        return moved or generation

    monkeypatch.setattr(submitter, "submit", submit)
    return submitted


def queued(lease_s: float) -> Generation:
    generation = stored_generation(status=Status.QUEUED).model_copy(
        update={
            "provider": None,
            "provider_task_id": None,
            "submit_lease_until": utcnow() + timedelta(seconds=lease_s),
        }
    )
    get_generation_store().create(generation)
    return generation


def delayed_messages() -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=str(get_settings().submit_queue_url), AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def test_a_safety_net_due_while_the_create_still_submits_leaves_it_alone(
    pipeline_aws: None, submits: list[Generation]
) -> None:
    # Given a generation whose create is still submitting it (its lease runs for another 30 s)
    queued(lease_s=30)
    # When its safety net comes due
    retry_submission(SubmitMessage(generation_id="gen_test"))
    # Then nothing is submitted a second time, and the safety net looks again once the lease is over
    assert submits == []
    assert delayed_messages() == 1


def test_a_lease_left_by_a_crashed_submitter_is_taken_once_it_has_passed(
    pipeline_aws: None, submits: list[Generation]
) -> None:
    # Given a generation whose submitter died holding the lease, now passed
    queued(lease_s=-1)
    # When its safety net comes due, it is submitted (from its tenant's line) and watched by its fallback
    retry_submission(SubmitMessage(generation_id="gen_test"))
    assert [g.id for g in submits] == ["gen_test"]
    assert execution_exists("gen_test")
    # And a redelivery of that message submits nothing again
    retry_submission(SubmitMessage(generation_id="gen_test"))
    assert [g.id for g in submits] == ["gen_test"]


def test_a_submitted_write_applied_with_its_answer_lost_still_gets_its_fallback(pipeline_aws: None) -> None:
    generation = queued(lease_s=30)
    task = ProviderTask(provider=ProviderName.KLING, task_id="tk_9", status=Status.SUBMITTED)
    # Given our own SUBMITTED write, applied, whose answer was lost (so its retry is refused)
    get_generation_store().transition("gen_test", Status.SUBMITTED, provider="kling", provider_task_id="tk_9")
    assert not execution_exists("gen_test")
    # When the submit records it
    recorded = generations._record_submitted(generation, ProviderName.KLING, "default", task)
    # Then it carries on as the writer: the generation is watched by its fallback (Kling here never calls back)
    assert recorded.status is Status.SUBMITTED
    assert execution_exists("gen_test")
