"""AWS calls applied whose answer was lost (the connection dropped): botocore retries them, and the retry
must not turn our own success into a failure (found by the chaos run's fault proxy)."""

from __future__ import annotations

import pytest

from kling_pipeline.domain.status import Status
from kling_pipeline.errors import Conflict
from kling_pipeline.store.generations import get_generation_store

from .conftest import stored_generation


def test_a_create_applied_with_its_answer_lost_is_not_a_conflict(pipeline_aws: None) -> None:
    # Found by the chaos run: the generation's PutItem was applied, its answer dropped; botocore's retry was
    # refused ("already exists") and the API answered 409 for the generation it had just created.
    store = get_generation_store()
    generation = stored_generation(status=Status.QUEUED)
    store.create(generation)
    store.create(generation)  # the retried put of the very same document: fine
    with pytest.raises(Conflict):
        store.create(generation.model_copy(update={"progress": 5}))  # someone else's document: a conflict
