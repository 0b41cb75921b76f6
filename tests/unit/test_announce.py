"""Each terminal state is published once in a normal run (issue 11, "smaller things"): a second looker
(ingest of a duplicate callback, the poller, the submitter's safety net) that reads the generation while
the first is still publishing must not publish again; after a crash (the claim expires) it does."""

from __future__ import annotations

from collections import Counter
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


def test_a_live_claim_keeps_the_lookers_watching_until_the_outcome_is_announced(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the chaos run: a process that died right after claiming left the claim; the poller's last
    # poll, the ingest of a duplicate callback and the safety net each saw "being announced", stopped
    # watching, and the event and the webhook were never sent.
    from kling_pipeline.services.fallback import PollState, poll_step
    from kling_pipeline.services.ingest import IngestMessage, ingest
    from kling_pipeline.services.submitter import SubmitMessage, retry_submission

    sent: list[str] = []
    monkeypatch.setattr(messaging, "publish", lambda detail_type, detail: sent.append(detail["id"]))
    dead_claim = utcnow() + timedelta(seconds=30)
    generation = stored_generation(status=Status.FAILED).model_copy(
        update={"announce_claimed_until": dead_claim}
    )
    get_generation_store().create(generation)

    # While the claim lasts, nobody publishes — and nobody stops looking
    assert lifecycle.announce(generation) is False
    assert poll_step(PollState(generation_id=generation.id, wait_s=5)).done is False
    with pytest.raises(lifecycle.AnnouncementPending):
        retry_submission(SubmitMessage(generation_id=generation.id))
    assert sent == []
    # ... and whoever stops anyway (an ingest of a duplicate callback) leaves a look for after the claim
    queued: list[tuple[str, int]] = []
    monkeypatch.setattr(
        messaging, "send", lambda url, message, delay_s=0: queued.append((message.generation_id, delay_s))
    )
    ingest(IngestMessage(generation_id=generation.id))
    assert queued and queued[-1][0] == generation.id and queued[-1][1] > 0

    # Once it has expired, the next look announces, and then the poller is done
    def expired(current: Any) -> Any:
        return current.model_copy(update={"announce_claimed_until": utcnow() - timedelta(seconds=1)})

    get_generation_store().update(generation.id, expired)
    assert poll_step(PollState(generation_id=generation.id, wait_s=5)).done is True
    assert sent == [generation.id]
    retry_submission(SubmitMessage(generation_id=generation.id))  # announced: nothing pending
    assert sent == [generation.id]


def test_a_terminal_write_applied_with_its_answer_lost_is_still_announced(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the chaos run: the succeed UpdateItem was applied, its answer dropped; the retried write
    # was refused (the status had already moved), so `succeed` saw a lost race and nobody announced.
    sent: list[str] = []
    monkeypatch.setattr(messaging, "publish", lambda detail_type, detail: sent.append(detail["id"]))
    generation = stored_generation(status=Status.SUCCEEDED)  # our own write, as the retry finds it
    get_generation_store().create(generation)

    assert lifecycle.succeed(generation.id, outputs=[], actual_cost=None) is None  # "lost the race"
    assert sent == [generation.id]
    assert lifecycle.fail(generation.id, "timeout", "late") is None  # announced now: nothing more
    assert sent == [generation.id]


def test_the_outcomes_writer_claims_the_announcement_and_settles_the_budget_in_the_same_write(
    pipeline_aws: None, calls: Counter[str]
) -> None:
    from kling_pipeline.services import budgets

    get_generation_store().create(stored_generation(status=Status.PROCESSING))
    calls.clear()

    assert lifecycle.succeed("gen_test", outputs=[], actual_cost=lifecycle.NOT_BILLED) is not None

    # The final status with the claim and the settlement (one transaction), the event, the "announced"
    # mark: no claim write, no settlement call of their own
    assert calls == Counter({"TransactWriteItems": 1, "PutEvents": 1, "UpdateItem": 1})
    stored = get_generation_store().get("gen_test")
    assert stored is not None and stored.announced and stored.announce_claimed_until is None
    month = budgets.usage(stored.tenant_id, budgets.month_of(stored.created_at))
    assert month.counts == {"succeeded": 1} and month.spent_usd == 0


def test_a_writer_whose_terminal_write_answer_was_lost_knows_its_own_claim_and_announces_at_once(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # drop_after_apply: the terminal UpdateItem is applied, its answer lost, botocore sends it again and the
    # table refuses it (the version moved). The claim it wrote is this writer's own: no waiting for expiry.
    sent: list[str] = []
    monkeypatch.setattr(messaging, "publish", lambda detail_type, detail: sent.append(detail["id"]))
    queued: list[str] = []
    monkeypatch.setattr(
        messaging, "send", lambda url, message, delay_s=0: queued.append(message.generation_id)
    )
    store = get_generation_store()
    store.create(stored_generation(status=Status.PROCESSING))
    client = store._table.meta.client  # the answer of the table's own call is what the fault drops
    real_write = client.transact_write_items
    dropped: list[bool] = []

    def answer_lost_then_retried(**kwargs: Any) -> Any:
        if not dropped:  # the first write of `fail`: the final status
            dropped.append(True)
            real_write(**kwargs)  # applied; the answer never arrives, so the call is made again
        return real_write(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", answer_lost_then_retried)

    assert lifecycle.fail("gen_test", "provider_error", "boom") is None  # the retry was refused
    assert dropped and sent == ["gen_test"] and queued == []
    stored = store.get("gen_test")
    assert stored is not None and stored.status is Status.FAILED and stored.announced


def test_a_writer_that_died_after_its_terminal_write_is_covered_even_when_the_look_again_cannot_be_sent(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer died right after the terminal write: its claim is live, nobody published. The ingest
    # message comes back; a look-again that cannot be queued fails that message (SQS brings it back) rather
    # than leaving the event to a send that never happened.
    from kling_pipeline.services.ingest import IngestMessage, ingest

    sent: list[str] = []
    monkeypatch.setattr(messaging, "publish", lambda detail_type, detail: sent.append(detail["id"]))
    get_generation_store().create(stored_generation(status=Status.PROCESSING))
    get_generation_store().transition(
        "gen_test", Status.SUCCEEDED, announce_claimed_until=utcnow() + timedelta(seconds=30)
    )

    def unsendable(url: str | None, message: Any, delay_s: int = 0) -> None:
        raise RuntimeError("SQS unreachable")

    monkeypatch.setattr(messaging, "send", unsendable)
    with pytest.raises(lifecycle.AnnouncementPending):
        ingest(IngestMessage(generation_id="gen_test"))
    assert sent == []
