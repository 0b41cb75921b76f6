"""The fallback's give-up step (state machine `GiveUp`, after FallbackMaxPollErrors failed polls in a row).

It ends an open generation `failed` with `poll_failed` without asking the provider (whatever made the polls
fail is not on this path), and leaves a generation that reached a final state meanwhile untouched.
"""

from __future__ import annotations

import pytest

from kling_pipeline.domain.status import Status
from kling_pipeline.services.fallback import PollState, poll_step
from kling_pipeline.store.generations import get_generation_store
from tests.unit.conftest import stored_generation

pytestmark = pytest.mark.usefixtures("pipeline_aws")


def test_giving_up_fails_an_open_generation_without_asking_the_provider() -> None:
    # The provider is unreachable (respx is not active, and nothing listens at its address): a poll
    # would fail; giving up must not try.
    get_generation_store().create(stored_generation("gen_giveup1"))
    state = poll_step(PollState(generation_id="gen_giveup1", wait_s=4, give_up=True))
    assert state.done
    stored = get_generation_store().get("gen_giveup1")
    assert stored is not None and stored.status is Status.FAILED
    assert stored.error is not None and stored.error.code == "poll_failed"


def test_giving_up_leaves_a_finished_generation_as_it_is() -> None:
    get_generation_store().create(stored_generation("gen_giveup2", status=Status.SUCCEEDED))
    state = poll_step(PollState(generation_id="gen_giveup2", wait_s=4, give_up=True))
    assert state.done
    stored = get_generation_store().get("gen_giveup2")
    assert stored is not None and stored.status is Status.SUCCEEDED and stored.error is None
