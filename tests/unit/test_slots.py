"""Slots and the fair queue in DynamoDB (moto, the template's table): per-account limits held by
conditional writes, leases that free a crashed holder's slot, backoff after a throttle, and a queue that is
FCFS per tenant and round-robin across tenants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from kling_pipeline.store.queue import QueueEntry, QueueStore
from kling_pipeline.store.slots import SlotStore
from tests.unit.test_elements import template_table

TABLE = "kling-slots-test"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> Iterator[object]:
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(TableName=TABLE, **template_table())
        yield boto3.resource("dynamodb", region_name="us-east-1").Table(TABLE)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slots(table: object, clock: Clock) -> SlotStore:
    return SlotStore(table, clock=clock)  # type: ignore[arg-type]


def test_an_account_never_gives_out_more_slots_than_its_limit(slots: SlotStore) -> None:
    taken = [slots.acquire(slots.view("kling", "a", 2), f"gen_{n}", lease_s=60) for n in range(3)]
    assert [slot.index if slot else None for slot in taken] == [0, 1, None]
    assert slots.view("kling", "a", 2).in_flight(slots.now()) == 2
    assert slots.view("kling", "b", 2).in_flight(slots.now()) == 0  # accounts are independent


def test_two_writers_with_the_same_stale_view_cannot_share_a_slot(slots: SlotStore) -> None:
    stale_1, stale_2 = slots.view("evolink", "a", 1), slots.view("evolink", "a", 1)
    assert slots.acquire(stale_1, "gen_1", lease_s=60) is not None
    assert slots.acquire(stale_2, "gen_2", lease_s=60) is None  # the conditional put refuses it


def test_taking_again_returns_the_holders_own_slot(slots: SlotStore) -> None:
    first = slots.acquire(slots.view("kling", "a", 1), "gen_1", lease_s=60)
    again = slots.acquire(slots.view("kling", "a", 1), "gen_1", lease_s=60)
    assert first == again


def test_release_frees_the_slot_once_and_only_for_its_holder(slots: SlotStore) -> None:
    slots.acquire(slots.view("kling", "a", 1), "gen_1", lease_s=60)
    assert not slots.release("kling", "a", "gen_other", limit=1)
    assert slots.release("kling", "a", "gen_1", limit=1)
    assert not slots.release("kling", "a", "gen_1", limit=1)
    assert slots.acquire(slots.view("kling", "a", 1), "gen_2", lease_s=60) is not None


def test_a_crashed_holders_slot_comes_back_when_its_lease_runs_out(slots: SlotStore, clock: Clock) -> None:
    slots.acquire(slots.view("kling", "a", 1), "gen_crashed", lease_s=30)
    assert slots.acquire(slots.view("kling", "a", 1), "gen_next", lease_s=30) is None
    clock.now += 31
    assert slots.view("kling", "a", 1).in_flight(clock.now) == 0
    assert slots.acquire(slots.view("kling", "a", 1), "gen_next", lease_s=30) is not None
    assert not slots.release("kling", "a", "gen_crashed", limit=1)  # the old holder cannot free it now


def test_a_throttled_account_is_backed_off_then_recovers_step_by_step(slots: SlotStore, clock: Clock) -> None:
    for n in range(3):
        slots.acquire(slots.view("kling", "a", 5), f"gen_{n}", lease_s=600)
    view = slots.view("kling", "a", 5)
    slots.throttled(view, base_backoff_s=10)  # the third create was refused: it really takes 2
    slots.release("kling", "a", "gen_2", limit=5)
    backed_off = slots.view("kling", "a", 5)
    assert backed_off.effective_limit == 2 and backed_off.free(clock.now) == 0
    assert slots.acquire(backed_off, "gen_x", lease_s=600) is None
    clock.now += 11
    after = slots.view("kling", "a", 5)
    assert after.usable_limit(clock.now) == 2 and after.free(clock.now) == 0  # still lowered
    slots.release("kling", "a", "gen_0", limit=5)
    slot = slots.acquire(slots.view("kling", "a", 5), "gen_x", lease_s=600)
    assert slot is not None
    slots.recovered(slots.view("kling", "a", 5))
    assert slots.view("kling", "a", 5).effective_limit == 2  # not yet: ten backoffs of quiet first
    clock.now += 90
    slots.recovered(slots.view("kling", "a", 5))
    assert slots.view("kling", "a", 5).effective_limit == 4  # doubled
    slots.recovered(slots.view("kling", "a", 5))
    assert slots.view("kling", "a", 5).effective_limit == 4  # the next step only after another pause
    clock.now += 100
    slots.recovered(slots.view("kling", "a", 5))
    assert slots.view("kling", "a", 5).effective_limit is None  # back to the configured 5


def test_a_lowered_limit_held_by_long_tasks_is_probed_after_a_quiet_period(
    slots: SlotStore, clock: Clock
) -> None:
    # Two tasks that outlive us (timed out on our side, still running there) hold the account's slots,
    # and the account refused a third: the lowered limit is all held, so no create can succeed to raise it.
    for n in range(3):
        slots.acquire(slots.view("kling", "a", 5), f"gen_{n}", lease_s=10_000)
    slots.throttled(slots.view("kling", "a", 5), base_backoff_s=10)
    slots.release("kling", "a", "gen_2", limit=5)
    clock.now += 11
    assert slots.view("kling", "a", 5).free(clock.now) == 0
    clock.now += 90  # ten backoffs of quiet: one more slot may be tried without waiting for the leases
    probe = slots.acquire(slots.view("kling", "a", 5), "gen_probe", lease_s=600)
    assert probe is not None and slots.acquire(slots.view("kling", "a", 5), "gen_next", lease_s=600) is None
    slots.throttled(slots.view("kling", "a", 5), base_backoff_s=10)  # refused again: it is still full
    assert slots.view("kling", "a", 5).effective_limit == 2


def test_repeated_throttles_double_the_backoff(slots: SlotStore, clock: Clock) -> None:
    slots.acquire(slots.view("kling", "a", 5), "gen_1", lease_s=600)
    slots.throttled(slots.view("kling", "a", 5), base_backoff_s=10)
    first = slots.view("kling", "a", 5).backoff_until - clock.now
    slots.throttled(slots.view("kling", "a", 5), base_backoff_s=10)
    second = slots.view("kling", "a", 5).backoff_until - clock.now
    assert (first, second) == (10, 20)
    assert slots.view("kling", "a", 5).effective_limit == 1  # never below one


# -- the queue ------------------------------------------------------------------------------------------


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def entry(tenant: str, n: int) -> QueueEntry:
    return QueueEntry(tenant, f"gen_{tenant}_{n:03d}", T0 + timedelta(seconds=n), provider="kling")


def test_queue_is_fcfs_per_tenant_and_round_robin_across_tenants(table: object) -> None:
    queue = QueueStore(table)  # type: ignore[arg-type]
    for n in range(3):
        queue.enqueue(entry("big", n), expires_at=2e9)
    queue.enqueue(entry("small", 10), expires_at=2e9)
    queue.served("big", 5.0)
    assert queue.tenants(1.0) == ["small", "big"]  # never served goes first
    assert [e.generation_id for e in queue.heads("big", 2)] == ["gen_big_000", "gen_big_001"]
    head = queue.heads("big")[0]
    assert queue.claim(head) and not queue.claim(head)  # one refill wins
    queue.put_back(head)
    assert queue.heads("big")[0] == head  # back in its place
    assert queue.count_before("big", entry("big", 2).sort_key) == 2
    assert queue.count_before("big", None, at_most=1) == 1
    queue.served("small", 6.0)
    assert queue.tenants(1.0) == ["big", "small"]
    assert queue.tenants(3e9) == []  # expired tenant items are ignored until TTL removes them


def test_each_line_counts_what_waits_in_it_without_reading_it(table: object) -> None:
    queue = QueueStore(table)  # type: ignore[arg-type]
    assert [queue.enqueue(entry("t", n), expires_at=2e9) for n in range(3)] == [True, True, True]
    assert not queue.enqueue(entry("t", 0), expires_at=2e9)  # already in line: counted once
    waiting = {line.tenant_id: line.waiting for line in queue.lines(1.0)}
    assert waiting == {"t": 3}
    head = queue.heads("t")[0]
    queue.claim(head)
    assert queue.lines(1.0)[0].waiting == 2
    queue.put_back(head)
    queue.remove(entry("t", 2))
    queue.remove(entry("t", 2))  # gone already: not counted twice
    assert queue.lines(1.0)[0].waiting == 2
    for item in queue.heads("t", 5):
        queue.claim(item)
    assert queue.tenants(1.0) == []  # nothing waiting: skipped without reading the line


def test_the_total_over_every_line_moves_with_each_line_and_mends_a_stale_count(table: object) -> None:
    queue = QueueStore(table)  # type: ignore[arg-type]
    for tenant, n in (("a", 0), ("a", 1), ("b", 2)):
        queue.enqueue(entry(tenant, n), expires_at=2e9)
    queue.enqueue(entry("a", 0), expires_at=2e9)  # already in line
    assert queue.waiting() == 3
    head = queue.heads("a")[0]
    assert queue.claim(head) and not queue.claim(head)
    assert queue.waiting() == 2
    queue.put_back(head)
    queue.put_back(head)  # back already: counted once
    assert queue.waiting() == 3
    # A tenant's count left over with nothing in its line (an item from before a crash): the recount takes
    # it off the tenant and the total alike.
    for item in queue.heads("b", 5):
        table.delete_item(Key={"pk": queue.partition("b"), "sk": item.sort_key})  # type: ignore[attr-defined]
    queue.recount("b")
    assert queue.waiting() == 2 and {line.tenant_id: line.waiting for line in queue.lines(1.0)}["b"] == 0
    # A total changed since it was read is never zeroed.
    queue.reset_total(seen=5)
    assert queue.waiting() == 2


def test_forgetting_an_account_restores_its_configured_limit(slots: SlotStore) -> None:
    slots.acquire(slots.view("kling", "a", 5), "gen_1", lease_s=600)
    slots.throttled(slots.view("kling", "a", 5), base_backoff_s=10)
    slots.forget("kling", "a")
    view = slots.view("kling", "a", 5)
    assert view.effective_limit is None and view.free(slots.now()) == 4
