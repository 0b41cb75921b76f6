"""What a create that crashed or failed half-way leaves behind is finished by the submitter's safety net,
and s3:// inputs are accepted only from their owner."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from kling_pipeline import messaging
from kling_pipeline.config import get_settings, reset_settings
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import InvalidInput
from kling_pipeline.services.generations import SubmitMessage, validated_request
from kling_pipeline.services.lifecycle import announce
from kling_pipeline.services.s3_keys import owner_of
from kling_pipeline.services.submitter import retry_submission
from kling_pipeline.store.generations import get_generation_store

from .conftest import stored_generation


def execution_exists(generation_id: str) -> bool:
    arn = str(get_settings().state_machine_arn).replace(":stateMachine:", ":execution:") + f":{generation_id}"
    try:
        boto3.client("stepfunctions").describe_execution(executionArn=arn)
    except ClientError:
        return False
    return True


def test_a_submitted_generation_without_a_fallback_gets_one(pipeline_aws: None) -> None:
    # Given a generation recorded as submitted whose fallback never started (the create failed right there)
    get_generation_store().create(stored_generation(status=Status.SUBMITTED))
    assert not execution_exists("gen_test")
    # When the safety-net message comes due
    retry_submission(SubmitMessage(generation_id="gen_test"))
    # Then the fallback runs, and a second delivery of the message changes nothing
    assert execution_exists("gen_test")
    retry_submission(SubmitMessage(generation_id="gen_test"))


def test_an_outcome_whose_event_failed_is_announced_by_the_safety_net(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    get_generation_store().create(stored_generation(status=Status.FAILED))
    generation = get_generation_store().get("gen_test")
    assert generation is not None

    def broken(detail_type: str, detail: dict[str, Any]) -> None:
        raise messaging.EventsNotDelivered("EventBridge is down")

    # Given an announcement that failed (and did not fail its caller)
    monkeypatch.setattr(messaging, "publish", broken)
    announce(generation)
    stored = get_generation_store().get("gen_test")
    assert stored is not None and not stored.announced

    # When the safety net looks again with EventBridge back
    monkeypatch.setattr(messaging, "publish", lambda kind, detail: published.append((kind, detail)))
    retry_submission(SubmitMessage(generation_id="gen_test"))

    # Then the outcome is announced exactly once
    assert [kind for kind, _ in published] == ["Generation Failed"]
    stored = get_generation_store().get("gen_test")
    assert stored is not None and stored.announced
    retry_submission(SubmitMessage(generation_id="gen_test"))
    assert len(published) == 1


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("inputs/tenant-a/cat.png", "tenant-a"),
        ("inputs/tenant-a", None),
        ("uploads/team-b/cat.png", "team-b"),
        ("uploads/cat.png", "uploads"),
        ("outputs/tenant-a/gen_1/video-1.mp4", None),
    ],
)
def test_owner_of_a_key(monkeypatch: pytest.MonkeyPatch, key: str, owner: str | None) -> None:
    monkeypatch.setenv("UPLOAD_TENANTS", "uploads/team-b/=team-b")
    monkeypatch.setenv("UPLOAD_TENANT_ID", "uploads")
    reset_settings()
    try:
        assert owner_of(key) == owner
    finally:
        reset_settings()


def test_another_tenants_object_is_refused_before_anything_is_read(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_TENANTS", "uploads/team-b/=team-b")
    reset_settings()
    body = {"mode": "image-to-video", "prompt": "x", "first_frame": "s3://media/uploads/team-b/secret.png"}
    # The default upload tenant's prefix contains team-b's: its jobs still cannot read team-b's objects.
    with pytest.raises(InvalidInput) as refused:
        validated_request(body, tenant_id=get_settings().upload_tenant_id)
    assert [issue.field for issue in refused.value.details] == ["first_frame"]
    assert "your own objects" in refused.value.details[0].issue
    with pytest.raises(InvalidInput):
        validated_request({**body, "first_frame": "s3://media/inputs/tenant-b/x.png"}, tenant_id="tenant-a")
