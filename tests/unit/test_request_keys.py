"""A create that crashed half-way is run again by Powertools once its in-progress record expires (the
invocation that held it is gone). With the same `Idempotency-Key` that second run must continue the first
run's generation, not make another: found by the chaos run as two generations, and two paid tasks, for one
client request."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kling_pipeline import messaging
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.services import generations
from kling_pipeline.services.generations import create_generation
from kling_pipeline.store.generations import get_generation_store
from kling_pipeline.store.request_keys import REQUEST_KEY_WINDOW, get_request_keys

BODY = {"mode": "text-to-video", "prompt": "A boat on a lake", "provider": "kling"}


class Crash(BaseException):
    """The invocation dies here: nothing after it runs, no `except Exception` sees it."""


def tenant_generations(tenant_id: str = "tenant-a") -> list[Generation]:
    return get_generation_store().list_for_tenant(tenant_id, status=None, limit=100, cursor=None).items


@pytest.fixture
def submits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The provider hand-off, recorded instead of called (it is the safety net's job after a crash)."""
    submitted: list[str] = []

    def submit(generation: Generation, **_: object) -> Generation:
        submitted.append(generation.id)
        return generation

    monkeypatch.setattr(generations, "submit", submit)
    return submitted


def test_a_create_that_crashed_after_its_write_is_continued_not_made_twice(
    pipeline_aws: None, submits: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(generation: Generation, **_: object) -> Generation:
        raise Crash

    recorded = generations.submit
    # Given a create that wrote its generation and died before handing it to the provider
    monkeypatch.setattr(generations, "submit", crash)
    with pytest.raises(Crash):
        create_generation(BODY, tenant_id="tenant-a", request_key="order-1")
    (first,) = tenant_generations()
    # When the client's retry runs the create again with the same key
    monkeypatch.setattr(generations, "submit", recorded)
    again = create_generation(BODY, tenant_id="tenant-a", request_key="order-1")
    # Then it answers with that generation; nothing new is written or submitted (the safety net submits it)
    assert again.id == first.id
    assert [g.id for g in tenant_generations()] == [first.id]
    assert submits == []


def test_a_create_that_crashed_before_its_write_writes_under_the_claimed_id(
    pipeline_aws: None, submits: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    send = messaging.send

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    # Given a create that claimed its key and died before writing the generation
    monkeypatch.setattr(messaging, "send", crash)
    with pytest.raises(Crash):
        create_generation(BODY, tenant_id="tenant-a", request_key="order-2")
    assert tenant_generations() == []
    # When the retry runs, it writes and submits one generation; another key or tenant is another request
    monkeypatch.setattr(messaging, "send", send)
    again = create_generation(BODY, tenant_id="tenant-a", request_key="order-2")
    other = create_generation(BODY, tenant_id="tenant-a", request_key="order-3")
    elsewhere = create_generation(BODY, tenant_id="tenant-b", request_key="order-2")
    assert again.id == get_request_keys().claim("tenant-a", "order-2", "gen_probe", now=utcnow())
    assert again.id in submits  # the retry hands it on to be submitted
    assert len({again.id, other.id, elsewhere.id}) == 3
    assert {g.id for g in tenant_generations()} == {again.id, other.id}


def test_a_key_is_free_again_after_the_idempotency_window(pipeline_aws: None) -> None:
    keys = get_request_keys()
    now = utcnow()
    assert keys.claim("tenant-a", "order-4", "gen_1", now=now) == "gen_1"
    assert keys.claim("tenant-a", "order-4", "gen_2", now=now) == "gen_1"
    later = now + REQUEST_KEY_WINDOW + timedelta(seconds=1)
    assert keys.claim("tenant-a", "order-4", "gen_3", now=later) == "gen_3"
