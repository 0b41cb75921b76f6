"""The generation store's compare-and-set: one conditional UpdateItem per change, statuses only forward,
and a copy remembered from an earlier read never lets a writer undo another."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import boto3

from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.generation import Generation, GenerationError
from kling_pipeline.domain.money import ActualCost
from kling_pipeline.domain.status import Status
from kling_pipeline.store.generations import GenerationStore, get_generation_store

from .conftest import stored_generation


def another_process() -> GenerationStore:
    """A second Lambda: same table, nothing remembered."""
    reset_caches()
    return get_generation_store()


def test_a_change_after_create_is_one_conditional_update_and_no_read(
    pipeline_aws: None, calls: Counter[str]
) -> None:
    store = get_generation_store()
    store.create(stored_generation(status=Status.QUEUED))
    calls.clear()
    submitted = store.transition("gen_test", Status.SUBMITTED, provider_task_id="tk_9")
    assert submitted is not None and submitted.status is Status.SUBMITTED
    assert calls == Counter({"UpdateItem": 1})
    stored = another_process().get("gen_test")
    assert stored is not None and stored.provider_task_id == "tk_9"


def test_statuses_never_move_backwards(pipeline_aws: None) -> None:
    store = get_generation_store()
    store.create(stored_generation(status=Status.PROCESSING))
    assert store.transition("gen_test", Status.SUCCEEDED) is not None
    for backwards in (Status.PROCESSING, Status.SUBMITTED, Status.FAILED, Status.CANCELED):
        assert store.transition("gen_test", backwards) is None
    assert another_process().get("gen_test").status is Status.SUCCEEDED  # type: ignore[union-attr]


def test_a_stale_copy_cannot_undo_another_writers_outcome(pipeline_aws: None, calls: Counter[str]) -> None:
    # Given a process that remembers the generation while it was processing
    ingest = get_generation_store()
    ingest.create(stored_generation(status=Status.PROCESSING))
    # When another process cancels it meanwhile
    canceler = GenerationStore(ingest._table)
    assert canceler.transition("gen_test", Status.CANCELED) is not None
    calls.clear()
    # Then the first process's success is refused, without a separate read
    assert ingest.transition("gen_test", Status.SUCCEEDED) is None
    assert calls == Counter({"UpdateItem": 1})
    assert another_process().get("gen_test").status is Status.CANCELED  # type: ignore[union-attr]


def test_a_stale_copy_is_brought_up_to_date_by_the_refusal_and_the_change_applied(
    pipeline_aws: None, calls: Counter[str]
) -> None:
    first = get_generation_store()
    first.create(stored_generation(status=Status.SUBMITTED))
    second = GenerationStore(first._table)
    assert second.transition("gen_test", Status.PROCESSING, progress=40) is not None
    calls.clear()
    done = first.transition("gen_test", Status.SUCCEEDED, progress=100)
    assert done is not None and done.status is Status.SUCCEEDED
    assert calls == Counter({"UpdateItem": 2})  # refused with the current item, then applied to it


def test_a_decline_on_a_remembered_copy_is_checked_against_the_table(pipeline_aws: None) -> None:
    # Given a process whose remembered copy says "announced" though the table says otherwise
    store = get_generation_store()
    store.create(stored_generation(status=Status.FAILED))
    table = store._table
    item = table.get_item(Key=store.key("gen_test"))["Item"]
    remembered = Generation.model_validate_json(str(item["doc"])).model_copy(update={"announced": True})
    store.remember("gen_test", remembered.model_dump_json(), int(str(item["version"])))

    # When it marks the generation announced
    def mark(current: Generation) -> Generation | None:
        return None if current.announced else current.model_copy(update={"announced": True})

    # Then the decision is taken again on the table's copy, and the mark is written
    assert store.update("gen_test", mark) is not None
    assert another_process().get("gen_test").announced  # type: ignore[union-attr]


def test_an_update_of_a_missing_document_writes_nothing(pipeline_aws: None) -> None:
    store = get_generation_store()
    assert store.transition("gen_missing", Status.SUCCEEDED) is None
    assert "Item" not in boto3.resource("dynamodb").Table("generations").get_item(
        Key=store.key("gen_missing")
    )


def test_a_generation_reads_back_exactly_as_written_though_its_defaults_are_not_stored(
    pipeline_aws: None,
) -> None:
    queued = stored_generation("gen_defaults", status=Status.QUEUED).model_copy(
        update={"provider": None, "provider_task_id": None, "progress": 0, "metadata": {}}
    )
    finished = stored_generation("gen_full", status=Status.FAILED).model_copy(
        update={
            "account": "second",
            "slot": 0,
            "slot_released": True,
            "announced": True,
            "progress": 100,
            "metadata": {"order": "42"},
            "error": GenerationError(code="content_policy", message="refused"),
            "actual_cost": ActualCost(usd=Decimal("0"), basis="not_billed"),
            "submit_attempts": 2,
        }
    )
    store = get_generation_store()
    for generation in (queued, finished):
        store.create(generation)
        assert another_process().get(generation.id) == generation
    item = boto3.resource("dynamodb").Table("generations").get_item(Key=store.key("gen_defaults"))["Item"]
    assert "announced" not in str(item["doc"]) and "slot" not in str(item["doc"])  # left at their defaults
