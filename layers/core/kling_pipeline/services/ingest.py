"""Ingest: ask the provider what really happened, then store the videos and record the outcome.

Used by the callback path (via the ingest queue) and by the fallback poller (inline), so both agree.
A callback body is never read here: the provider's own answer to a query is the only truth.
"""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, Output, utcnow
from kling_pipeline.domain.media import NotAnMp4
from kling_pipeline.domain.money import ActualCost
from kling_pipeline.domain.status import Status
from kling_pipeline.messages import IngestMessage
from kling_pipeline.observability import logger, metrics
from kling_pipeline.providers.base import Provider, ProviderName, ProviderTask
from kling_pipeline.providers.registry import account_adapter, get_ledger
from kling_pipeline.services import budgets, capacity, lifecycle, unconfirmed
from kling_pipeline.services.download import LinkExpired, open_download
from kling_pipeline.store.generations import IngestClaim, get_generation_store
from kling_pipeline.store.media import MediaStore, StoredVideo, get_media_store

# One ingest at a time per generation (the store's ingest lease, INGEST_LEASE_S): a duplicate callback
# arriving mid-download is retried later instead of downloading the same video twice. A crashed holder's
# lease simply runs out; whoever takes it over aborts the multipart upload the dead holder left open.

__all__ = ["IngestBusy", "IngestMessage", "apply_task", "ingest", "ingest_generation"]


class IngestBusy(Exception):
    """Another worker holds the ingest lease; the message is retried later."""


def ingest(message: IngestMessage) -> Generation | None:
    """Bring the generation up to date with the provider; returns it as stored afterwards.

    Reads the generation and takes its ingest lease in one call; a final one is only announced (if a crash
    came between its write and its event), and one another worker is ingesting is retried later."""
    store = get_generation_store()
    claim = _claim(message.generation_id)
    generation = claim.generation
    if generation is None:
        logger.warning("ingest for an unknown generation", extra={"generation_id": message.generation_id})
        return None
    if not claim.claimed and not generation.status.is_terminal:
        raise IngestBusy(f"{generation.id} is being ingested by another worker")
    if (
        message.provider is not None
        and message.task_id is not None
        and generation.provider_task_id is None
        and generation.unconfirmed_provider == message.provider
    ):
        generation = unconfirmed.adopt(generation, message.provider, message.task_id) or generation
    result: Generation | None = None
    try:
        result = ingest_generation(generation, leased=claim.claimed)
    finally:
        if claim.claimed and (result is None or not result.status.is_terminal):
            store.release_ingest(generation.id)
    return result


def _claim(generation_id: str) -> IngestClaim:
    """Take the ingest lease; taken over from a dead holder, first abort the upload it left open."""
    lease = timedelta(seconds=get_settings().ingest_lease_s)
    claim = get_generation_store().claim_ingest(generation_id, now=utcnow(), lease=lease)
    if claim.claimed and claim.taken_over and claim.generation is not None:
        get_media_store().abort_open_uploads(_outputs_prefix(claim.generation))
    return claim


def _outputs_prefix(generation: Generation) -> str:
    return f"outputs/{generation.tenant_id}/{generation.id}/"


def ingest_generation(generation: Generation, *, leased: bool = False) -> Generation | None:
    """`ingest` for a generation the caller has just read (the fallback poller), without reading it again;
    `leased` when the caller already holds the ingest lease."""
    if generation.status is Status.CANCELED:
        lifecycle.announce(generation)  # no-op once announced
        _record_canceled_cost(generation)
        return generation
    if generation.status.is_terminal:
        capacity.release(generation)  # no-op unless a crash came between the final write and the release
        lifecycle.announce(generation)  # no-op unless a crash came between the write and the event
        return generation
    if generation.provider is None or generation.provider_task_id is None:
        return generation  # still queued for submission: nothing to ask the provider yet
    task = _provider(generation).query(generation.provider_task_id)
    return apply_task(generation, task, leased=leased)


def apply_task(generation: Generation, task: ProviderTask, *, leased: bool = False) -> Generation | None:
    """Record what the provider says; the status only ever moves forward."""
    store = get_generation_store()
    if task.status.is_terminal and capacity.someone_waits():
        capacity.release(generation, task_ended=True)  # the next task need not wait for our download
    if task.status is Status.FAILED:
        error = task.error
        return lifecycle.fail(
            generation.id,
            error.code if error else "provider_error",
            error.message if error else "the provider reported a failure without a message",
            actual_cost=_cost(generation, task),
        )
    if task.status is Status.SUCCEEDED:
        return _store_outputs(generation, task, leased=leased)
    progress = task.progress
    updated = store.transition(generation.id, task.status, progress=progress)
    if updated is None and progress is not None:

        def advance(current: Generation) -> Generation | None:
            if current.status.is_terminal or (current.progress or 0) >= progress:
                return None
            return current.model_copy(update={"progress": progress})

        updated = store.update(generation.id, advance)
    return updated or store.get(generation.id)


def _store_outputs(generation: Generation, task: ProviderTask, *, leased: bool) -> Generation | None:
    store = get_generation_store()
    if not leased:  # the fallback poller: one ingest at a time per generation
        claim = _claim(generation.id)
        if not claim.claimed:
            if claim.generation is not None and claim.generation.status.is_terminal:
                return claim.generation
            raise IngestBusy(f"{generation.id} is being ingested by another worker")
    try:
        outputs = _download_all(generation, task)
    except NotAnMp4 as exc:
        store.release_ingest(generation.id)
        return lifecycle.fail(generation.id, "invalid_output", f"the provider's file was rejected: {exc}")
    except BaseException:
        if not leased:  # a caller holding the lease releases it itself
            store.release_ingest(generation.id)
        raise
    if not outputs:
        return lifecycle.fail(
            generation.id, "provider_error", "the provider reported success without a video"
        )
    result = lifecycle.succeed(generation.id, outputs, _cost(generation, task))
    if result is None:
        # Lost the race to a cancel or another writer: the record decides, the objects stay as evidence.
        current = store.get(generation.id)
        if current is not None and current.status is Status.CANCELED:
            _record_late_cost(generation.id, _cost(generation, task))
        return current
    return result


def _download_all(generation: Generation, task: ProviderTask) -> list[Output]:
    started = utcnow()
    media = get_media_store()
    outputs: list[Output] = []
    for index, output in enumerate(task.outputs):
        key = f"{_outputs_prefix(generation)}video-{index + 1}.mp4"
        try:
            stored = _download(media, key, output.url, source=generation.id)
        except LinkExpired:
            # Provider links expire (24 h); a fresh query hands out a fresh link, once.
            logger.info(
                "download link expired; asking the provider again", extra={"generation_id": generation.id}
            )
            fresh = _provider(generation).query(task.task_id)
            stored = _download(media, key, fresh.outputs[index].url, source=generation.id)
        metrics.add_metric(name="IngestBytes", unit=MetricUnit.Bytes, value=stored.bytes)
        outputs.append(
            Output(
                s3_uri=stored.s3_uri,
                bucket=stored.bucket,
                key=stored.key,
                bytes=stored.bytes,
                sha256=stored.sha256,
                duration_s=stored.summary.duration_s,
                width=stored.summary.width,
                height=stored.summary.height,
            )
        )
    metrics.add_metric(
        name="DownloadToStoredSeconds", unit=MetricUnit.Seconds, value=(utcnow() - started).total_seconds()
    )
    return outputs


def _download(media: MediaStore, key: str, url: str, *, source: str) -> StoredVideo:
    with open_download(url) as chunks:
        return media.store_video(key, chunks, source=source)


def _record_canceled_cost(generation: Generation) -> None:
    """A canceled task may still finish (and be charged) at the provider: keep the cost, ignore the video."""
    reported = generation.actual_cost is not None and generation.actual_cost.basis == "reported"
    if reported or generation.provider is None or generation.provider_task_id is None:
        return
    task = _provider(generation).query(generation.provider_task_id)
    if task.status.is_terminal:
        capacity.release(generation, task_ended=True)  # the provider could not stop it: free only now
        _record_late_cost(generation.id, _cost(generation, task))


def _record_late_cost(generation_id: str, cost: ActualCost) -> None:
    def record(current: Generation) -> Generation | None:
        return current.model_copy(update={"actual_cost": cost})

    updated = get_generation_store().update(generation_id, record)
    if updated is not None:
        budgets.settle_late(updated, cost)


def _cost(generation: Generation, task: ProviderTask) -> ActualCost:
    """The ledger's reading of the provider's answer (its own report first, docs/integrations.md)."""
    return get_ledger().actual(
        task.provider,
        task.status,
        reported_usd=task.cost.usd if task.cost else None,
        reported_units=task.cost.credits if task.cost else None,
        estimate=generation.estimated_cost,
    )


def _provider(generation: Generation) -> Provider:
    """The adapter of the account the task ran on (never another account's credentials)."""
    try:
        return account_adapter(ProviderName(str(generation.provider)), generation.account)
    except LookupError as exc:
        raise RuntimeError(f"{exc}; cannot ask about {generation.id}") from None
