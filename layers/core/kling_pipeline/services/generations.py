"""Create, read, list, cancel and estimate generations: the core function every trigger calls.

Create is the same for the API, S3 uploads and EventBridge (DESIGN.md §6.1): validate → write `queued`
→ submit with a callback URL and our id as the provider's external id → `submitted`. The fallback state
machine starts at once only for a provider that never calls back; otherwise the safety-net message, due at
the first poll time, starts it if the callback has not finished the generation by then (services.submitter).
A busy or unreachable provider leaves the generation `queued` and retried from the submit queue;
only a final answer (bad request, content policy) fails it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline import messaging
from kling_pipeline.config import get_settings
from kling_pipeline.domain.generation import Generation, GenerationError, GenerationPage, utcnow
from kling_pipeline.domain.listing import GenerationFilter
from kling_pipeline.domain.money import EstimatedCost
from kling_pipeline.domain.pricing import Estimate
from kling_pipeline.domain.request import GenerationRequest, parse_generation_request
from kling_pipeline.domain.status import Status
from kling_pipeline.errors import (
    Conflict,
    CreateUnconfirmed,
    InvalidInput,
    NoProviderAvailable,
    ProviderError,
)
from kling_pipeline.ids import new_generation_id
from kling_pipeline.messages import SubmitMessage
from kling_pipeline.observability import logger, metrics
from kling_pipeline.providers.base import Provider, ProviderName, ProviderTask
from kling_pipeline.providers.registry import (
    account_adapter,
    get_accounts,
    get_ledger,
    get_providers,
    get_router,
)
from kling_pipeline.providers.router import Router
from kling_pipeline.services import budgets, capacity, lifecycle, unconfirmed
from kling_pipeline.services.deadlines import check_deadline, first_wait_s, retry_delay_s
from kling_pipeline.services.elements import element_router
from kling_pipeline.services.inputs import check_inputs, with_presigned_inputs
from kling_pipeline.services.tokens import callback_token
from kling_pipeline.store.documents import AlongRefused, TransactItem, refused_by_condition
from kling_pipeline.store.generations import get_generation_store
from kling_pipeline.store.media import get_media_store
from kling_pipeline.store.request_keys import get_request_keys


def validated_request(body: Mapping[str, Any], *, tenant_id: str) -> GenerationRequest:
    """Every check that can fail on the caller's input, before anything is written or spent."""
    request = check_deadline(parse_generation_request(body), get_settings().task_deadline_s)
    return check_inputs(request, tenant_id=tenant_id)


def create_generation(
    body: Mapping[str, Any], *, tenant_id: str, source: str = "api", request_key: str | None = None
) -> Generation:
    """`request_key` (the client's `Idempotency-Key`) makes a create run again after a crash continue the
    generation the crashed run started instead of making a second one (store.request_keys)."""
    request = validated_request(body, tenant_id=tenant_id)
    router = _router_for(request, tenant_id)  # once: resolving elements reads each of them
    estimate = _quote(router, request)
    now = utcnow()
    generation_id = new_generation_id()
    if request_key is not None:
        claimed = get_request_keys().claim(tenant_id, request_key, generation_id, now=now)
        if claimed != generation_id and (earlier := get_generation_store().get(claimed)) is not None:
            # Written by the crashed run, whose safety net finishes what it left (submit, announce).
            logger.info(
                "continuing the generation of a create that did not finish", extra={"generation_id": claimed}
            )
            return earlier
        generation_id = claimed  # the crashed run died before writing it: write it under the claimed id
    estimated_cost = _estimated_cost(estimate, request.provider or estimate.chosen)
    generation = Generation(
        id=generation_id,
        tenant_id=tenant_id,
        status=Status.QUEUED,
        mode=request.mode,
        model=request.model,
        created_at=now,
        updated_at=now,
        progress=0,
        request=request,
        estimated_cost=estimated_cost,
        reserved_usd=budgets.reserved_amount(estimated_cost),
        metadata=request.metadata,
        source=source,
        deadline_at=now + timedelta(seconds=request.deadline_s or get_settings().task_deadline_s),
        # This process submits it next; the safety net must not submit it too meanwhile (services.submitter).
        submit_lease_until=now + timedelta(seconds=get_settings().submit_lease_s),
    )
    # Safety net, sent before the write so no generation can exist without it, due at the first poll time:
    # the submitter then finishes whatever this process could not (submit, announce the outcome) and starts
    # the fallback for a generation whose callback is late.
    safety_net = SubmitMessage(generation_id=generation.id)
    messaging.send(get_settings().submit_queue_url, safety_net, delay_s=first_wait_s(generation))
    # The budget reservation and the generation are one transaction: neither exists without the other.
    # BudgetExceeded writes nothing (the safety net then finds no generation and ends there). The same
    # write takes a provider slot when nobody waits (services.capacity.offer).
    provider = request.provider or (estimate.chosen.value if estimate.chosen else None)
    slot = _SlotAlong(generation, capacity.offer(generation, provider))
    budgets.reserve(tenant_id, estimated_cost, now=now, along_with=slot.create)
    logger.append_keys(generation_id=generation.id)
    # Into its tenant's line, then start whatever the free slots allow (this one if it is next).
    admitted = capacity.admit(generation, provider, submit, slot_taken=slot.taken)
    if admitted.status is Status.QUEUED:
        release_submit_lease(generation)  # it waits in line: the queue's timers may look at it again
    return admitted


class _SlotAlong:
    """The create's write with the slot it offers to take: refused for the slot alone (someone waits, the
    account is busier than last seen), the generation is written without it and lines up."""

    def __init__(self, generation: Generation, offered: capacity.SlotOffer | None) -> None:
        self.generation = generation
        self.offered = offered
        self.taken = False

    def create(self, reservation: list[TransactItem]) -> None:
        store = get_generation_store()
        if self.offered is None:
            store.create(self.generation, along=reservation)
            return
        try:
            store.create(self.generation, along=reservation + self.offered.items)
        except AlongRefused as refused:
            budget, slot = refused.reasons[: len(reservation)], refused.reasons[len(reservation) :]
            if any(map(refused_by_condition, budget)):
                raise AlongRefused(budget) from None  # the budget's to judge (budgets.reserve)
            capacity.declined(self.offered, slot)
            store.create(self.generation, along=reservation)
            return
        capacity.took(self.generation, self.offered)
        self.taken = True


def release_submit_lease(holder: Generation) -> None:
    """Done handing a generation on while it still waits (in line, or for a retry): the safety net and the
    queue's timers may look at it again. Best effort: a lease left behind runs out."""
    held = holder.submit_lease_until
    if held is None:
        return

    def release(current: Generation) -> Generation | None:
        if current.status is not Status.QUEUED or current.submit_lease_until != held:
            return None  # started, finished, or leased by someone else since
        return current.model_copy(update={"submit_lease_until": None})

    try:
        get_generation_store().update(holder.id, release)
    except Exception:
        logger.warning("submit lease not released; it runs out", exc_info=True)


def submit(generation: Generation, *, router: Router | None = None) -> Generation:
    """Hand a queued generation to the cheapest provider that takes it; never fails it for being busy."""
    if generation.unconfirmed_provider:
        lost_at = ProviderName(generation.unconfirmed_provider)
        has_callback = callback_url(lost_at, generation.id) is not None
        how = unconfirmed.strategy(lost_at, has_callback=has_callback)
        if how == "none":
            # An earlier create's answer was lost where nothing can be learnt, and its failure was not
            # written: a second create could be a second paid task.
            return unconfirmed.fail_unknowable(generation, lost_at)
        if how == "callback":
            # An earlier create went out there and its sender stopped before the answer was recorded
            # (found by the chaos run: a stack killed right after an EvoLink create; the safety net sent
            # a second one): its task calls back, as after a lost answer.
            return unconfirmed.wait_for_callback(
                generation, lost_at, account=generation.account, estimate=generation.estimated_cost
            )
    retried = generation.submit_attempts > 0 or capacity.took_a_slot_before(generation)
    if retried and (adopted := _adopt_existing(generation)) is not None:
        return adopted
    admission = capacity.AccountSlots(generation)  # a slot on an account before any create
    try:
        chosen = router or _router_for(generation.request, generation.tenant_id)
        if generation.unconfirmed_provider:  # a task of ours may exist there: never anywhere else
            chosen = chosen.only(ProviderName(generation.unconfirmed_provider))
        provider, task = chosen.submit(
            with_presigned_inputs(generation.request),
            callback_url_for=lambda name: callback_url(name, generation.id),
            external_task_id=generation.id,
            admission=admission,
            before_create=_CreateOnRecord(generation, admission).before_create,
        )
    except (NoProviderAvailable, InvalidInput) as exc:  # InvalidInput: an element deleted since create
        return lifecycle.fail(generation.id, exc.code, exc.message) or _reread(generation)
    except CreateUnconfirmed as exc:
        name = ProviderName(exc.provider)
        return unconfirmed.hold(
            generation,
            exc,
            estimate=_estimated_cost(chosen.estimate(generation.request), name),
            has_callback=callback_url(name, generation.id) is not None,
            requeue=_queue_for_retry,
            account=admission.account,  # its slot there stays taken: the task may be running
        )
    except ProviderError as exc:
        if exc.kind == "final":
            return lifecycle.fail(generation.id, exc.code, exc.message) or _reread(generation)
        return _queue_for_retry(generation, exc)
    estimate = _estimated_cost(chosen.estimate(generation.request), provider)
    admission.succeeded()
    account = admission.account or _first_account(provider)
    return _record_submitted(generation, provider, account, task, estimate=estimate, slot=admission.slot)


class _CreateOnRecord:
    """Before a create goes to a provider where a task of ours cannot be looked up by our id (EvoLink,
    kling3api), the generation records that it is going there (`unconfirmed_provider`, and the account):
    should this process die before the answer is recorded, whoever looks next treats the create as one
    whose answer was lost — waits for its callback, or fails it as charged — and never sends a second one.
    Kling needs no record (a retry looks the task up first); the answer's write clears it."""

    def __init__(self, generation: Generation, admission: capacity.AccountSlots) -> None:
        self.generation = generation
        self.admission = admission
        self.recorded = generation.unconfirmed_provider

    def before_create(self, provider: Provider) -> None:
        going = None if provider.lost_create == "lookup" else provider.name.value
        if going == self.recorded or (going is None and _lookup_only(self.recorded) == self.recorded):
            return  # on record already; or a lookup's pin (an earlier answer lost there), which stays
        account = self.admission.account

        def record(current: Generation) -> Generation | None:
            if current.status is not Status.QUEUED or current.provider_task_id is not None:
                return None
            return current.model_copy(update={"unconfirmed_provider": going, "account": account})

        get_generation_store().update(self.generation.id, record)
        self.recorded = going


def _record_submitted(
    generation: Generation,
    provider: ProviderName,
    account: str,
    task: ProviderTask,
    *,
    estimate: EstimatedCost | None = None,
    slot: int | None = None,
) -> Generation:
    store = get_generation_store()
    changes: dict[str, Any] = {"estimated_cost": estimate} if estimate is not None else {}
    submitted = store.transition(
        generation.id,
        Status.SUBMITTED,
        provider=provider.value,
        account=account,
        provider_task_id=task.task_id,
        progress=0,
        submitted_at=utcnow(),
        submit_lease_until=None,
        slot=slot,
        unconfirmed_provider=None,  # the answer is here (a create's record of going there is done)
        **changes,
    )
    if submitted is None:
        current = _reread(generation)
        if not _is_own(current, provider, task.task_id):
            if current.status is Status.CANCELED and current.provider_task_id is None:
                # Canceled while we were submitting: stop the paid task where we can, and remember it.
                if cancel_at_provider(provider, account, task.task_id):
                    stopped = current.model_copy(
                        update={"provider": provider.value, "account": account, "slot": slot}
                    )
                    capacity.release(stopped, task_ended=True)
                store.update(
                    generation.id,
                    lambda g: g.model_copy(
                        update={
                            "provider": provider.value,
                            "account": account,
                            "provider_task_id": task.task_id,
                        }
                    ),
                )
            return current
        # Our own write, applied with its answer lost and its retry refused: carry on as its writer.
        submitted = current
    metrics.add_metric(name="GenerationSubmitted", unit=MetricUnit.Count, value=1)
    settings = get_settings()
    if _calls_back(provider, generation.id):
        if generation.submit_attempts > 0:
            # A retried submit: the create's safety net is spent, so a new check comes due at the first poll.
            # If it cannot be sent, the message being handled fails and comes back to start the fallback.
            check = SubmitMessage(generation_id=generation.id)
            messaging.send(settings.submit_queue_url, check, delay_s=first_wait_s(generation))
        return submitted
    try:
        messaging.start_fallback(generation.id, first_wait_s=first_wait_s(generation))
    except Exception:
        # The task is paid for: never fail the request now; the submitter's safety net starts it.
        logger.exception("fallback not started yet", extra={"generation_id": generation.id})
        metrics.add_metric(name="FallbackStartDeferred", unit=MetricUnit.Count, value=1)
    return submitted


def _is_own(current: Generation, provider: ProviderName, task_id: str) -> bool:
    return (
        current.status is Status.SUBMITTED
        and current.provider == provider.value
        and current.provider_task_id == task_id
    )


def _calls_back(provider: ProviderName, generation_id: str) -> bool:
    """Whether a callback is expected (so the fallback waits to see whether it comes)."""
    adapter = get_providers().get(provider)
    return (
        adapter is not None
        and adapter.supports_callbacks
        and callback_url(provider, generation_id) is not None
    )


def get_generation(tenant_id: str, generation_id: str) -> Generation:
    generation = get_generation_store().get_for_tenant(tenant_id, generation_id)
    return capacity.queue_info(_with_download_urls(generation))


def list_generations(
    tenant_id: str,
    *,
    status: Status | None,
    limit: int,
    cursor: str | None,
    filters: GenerationFilter | None = None,
) -> GenerationPage:
    page = get_generation_store().list_for_tenant(
        tenant_id, status=status, limit=limit, cursor=cursor, filters=filters
    )
    return page.model_copy(update={"items": [_with_download_urls(item) for item in page.items]})


def cancel_generation(tenant_id: str, generation_id: str) -> Generation:
    store = get_generation_store()
    generation = store.get_for_tenant(tenant_id, generation_id)
    if generation.status is Status.CANCELED:
        return generation
    canceled = store.transition(
        generation_id,
        Status.CANCELED,
        error=GenerationError(code="canceled", message="canceled by the caller"),
        actual_cost=get_ledger().nothing(),  # until the provider reports a charge for the stopped task
    )
    if canceled is None:
        current = store.get_for_tenant(tenant_id, generation_id)
        if current.status is Status.CANCELED:
            return current
        raise Conflict(f"generation {generation_id} is already {current.status.value}")
    if canceled.provider and canceled.provider_task_id:
        # The slot stays taken while the provider may still run the task (no cancel): its lease frees it.
        if cancel_at_provider(ProviderName(canceled.provider), canceled.account, canceled.provider_task_id):
            capacity.release(canceled, task_ended=True)
    elif generation.status is Status.QUEUED:
        capacity.dequeue(canceled)
    messaging.stop_fallback(generation_id)
    metrics.add_metric(name="GenerationCanceled", unit=MetricUnit.Count, value=1)
    lifecycle.announce(canceled)
    return canceled


def estimate_generation(body: Mapping[str, Any], *, tenant_id: str) -> Estimate:
    request = validated_request(body, tenant_id=tenant_id)
    return _quote(_router_for(request, tenant_id), request)


def _quote(router: Router, request: GenerationRequest) -> Estimate:
    """Per-provider prices; raises when no enabled provider (or not the pinned one) can run the request."""
    router.plan(request)
    return router.estimate(request)


def _router_for(request: GenerationRequest, tenant_id: str) -> Router:
    """`get_router()`; for a request naming custom elements, one over the providers where all of them are
    ready, submitting with each provider's own element ids (raises InvalidInput for unusable elements)."""
    if not request.elements:
        return get_router()
    return element_router(request, tenant_id=tenant_id)


def callback_url(provider: ProviderName, generation_id: str) -> str | None:
    base = get_settings().public_base_url
    if not base:
        return None  # no public endpoint: the fallback poller is the only completion signal
    path = f"/v1/callbacks/{provider.value}/{generation_id}"
    return f"{base.rstrip('/')}{path}?token={callback_token(generation_id, provider.value)}"


def _adopt_existing(generation: Generation) -> Generation | None:
    """A retried submit first asks every account that can look tasks up by our id: never pay twice."""
    accounts_by_provider = get_accounts()
    if generation.unconfirmed_provider:  # an unconfirmed create: only that provider may hold our task
        name = ProviderName(generation.unconfirmed_provider)
        accounts_by_provider = {name: accounts_by_provider[name]} if name in accounts_by_provider else {}
    for name, accounts in accounts_by_provider.items():
        for account in accounts:
            try:
                task = account.adapter.find_by_external_id(generation.id, generation.request)
            except ProviderError:
                continue
            if task is not None:
                logger.info("adopting the task of an earlier attempt", extra={"generation_id": generation.id})
                estimate = _estimated_cost(get_router().estimate(generation.request), name)
                return _record_submitted(generation, name, account.name, task, estimate=estimate)
    return None


def _queue_for_retry(generation: Generation, error: ProviderError) -> Generation:
    settings = get_settings()
    attempts = generation.submit_attempts + 1
    delay = min(settings.submit_retry_max_s, settings.submit_retry_base_s * 2 ** min(attempts - 1, 10))
    delay = retry_delay_s(generation, int(delay * random.uniform(0.5, 1.0)) or 1)  # jitter spreads a burst
    changes: dict[str, Any] = {"submit_attempts": attempts, "submit_lease_until": None}
    if not isinstance(error, CreateUnconfirmed):
        # Every provider refused, which proves no task was made: a create's record of going to one that
        # cannot look tasks up is void (one that can keeps its lookup: an earlier answer may be lost).
        changes["unconfirmed_provider"] = _lookup_only(generation.unconfirmed_provider)
    updated = get_generation_store().update(
        generation.id,
        lambda g: g.model_copy(update=changes) if g.status is Status.QUEUED else None,
    )
    messaging.send(settings.submit_queue_url, SubmitMessage(generation_id=generation.id), delay_s=delay)
    metrics.add_metric(name="GenerationQueued", unit=MetricUnit.Count, value=1)
    logger.info(
        "providers busy; generation stays queued",
        extra={"generation_id": generation.id, "reason": error.code, "retry_in_s": delay},
    )
    return updated or _reread(generation)


def _lookup_only(provider: str | None) -> str | None:
    adapter = get_providers().get(ProviderName(provider)) if provider else None
    return provider if adapter is not None and adapter.lost_create == "lookup" else None


def cancel_at_provider(provider: ProviderName, account: str | None, task_id: str) -> bool:
    """Stop a paid task where the provider can (EvoLink); best effort, never raises. True when the
    provider stopped it (its account's slot is free again)."""
    try:
        return account_adapter(provider, account).cancel(task_id)
    except (ProviderError, LookupError) as exc:
        logger.warning("provider-side cancel failed", extra={"task_id": task_id, "reason": str(exc)})
        return False


def _first_account(provider: ProviderName) -> str:
    return get_accounts()[provider][0].name


def _estimated_cost(estimate: Estimate, provider: str | None) -> EstimatedCost | None:
    """The quote of `provider` (the one chosen, or the one that took the task) in USD."""
    quote = next((item for item in estimate.quotes if item.provider == provider), None)
    return None if quote is None else get_ledger().estimated(quote)


def _with_download_urls(generation: Generation) -> Generation:
    if not generation.outputs:
        return generation
    media = get_media_store()
    ttl = get_settings().presign_ttl_s
    outputs = [
        output.model_copy(update={"url": media.presign_get(output.bucket, output.key, ttl)})
        for output in generation.outputs
    ]
    return generation.model_copy(update={"outputs": outputs})


def _reread(generation: Generation) -> Generation:
    return get_generation_store().get(generation.id) or generation
