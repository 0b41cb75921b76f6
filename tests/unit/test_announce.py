"""Each terminal state is published once in a normal run (issue 11, "smaller things"): a second looker
(ingest of a duplicate callback, the poller, the submitter's safety net) that reads the generation while
the first is still publishing must not publish again; after a crash (the claim expires) it does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kling_pipeline import messaging
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.domain.status import Status
from kling_pipeline.services import lifecycle
from kling_pipeline.store.generations import get_generation_store

from .conftest import stored_generation


@pytest.fixture
def published(pipeline_aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    real = messaging.publish

    def publish(detail_type: str, detail: dict[str, Any]) -> None:
        sent.append(detail["id"])
        if len(sent) == 1:  # while the first announcer is on the wire, another looker comes by
            current = get_generation_store().get(detail["id"])
            assert current is not None
            lifecycle.announce(current)
        real(detail_type, detail)

    monkeypatch.setattr(messaging, "publish", publish)
    return sent


def test_a_second_looker_during_the_first_publish_publishes_nothing(published: list[str]) -> None:
    generation = stored_generation(status=Status.SUCCEEDED)
    get_generation_store().create(generation)

    lifecycle.announce(generation)
    lifecycle.announce(get_generation_store().get(generation.id))  # type: ignore[arg-type]

    assert published == [generation.id]
    stored = get_generation_store().get(generation.id)
    assert stored is not None and stored.announced


def test_a_claim_left_by_a_crash_expires_and_the_outcome_is_announced(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(messaging, "publish", lambda detail_type, detail: sent.append(detail["id"]))
    stale = utcnow() - timedelta(minutes=10)
    generation = stored_generation(status=Status.FAILED).model_copy(update={"announce_claimed_until": stale})
    get_generation_store().create(generation)

    lifecycle.announce(generation)

    assert sent == [generation.id]
