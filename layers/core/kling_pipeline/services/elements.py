"""Custom elements: created at every enabled provider offering them, tracked, listed, deleted, resolved.

Create (`create_element`, the domain entry point the API wraps with idempotency): validate → write the
element (`processing`) → create it at each enabled provider that offers elements (kling: official element
endpoints; evolink: the `kling-custom-element` model; kling3api has none) → record each provider's task.

Tracking needs no background poller: an element that is not settled is refreshed from its providers when
it is read (GET, list) or resolved for a generation, at most one provider call per provider element per
read, and only for the providers still working on it. A provider still working on an element after
`TASK_DEADLINE_S` is marked failed there with `timeout`.

Generations name our ids (`elm_…`); `element_router` turns them into a router over the providers where
every named element is ready, each submitting with its own element ids (`ElementMapped`). Unknown ids,
other tenants' ids and deleted ids are all "unknown element", so nothing reveals another tenant's element.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from kling_pipeline.config import get_settings
from kling_pipeline.domain.element import (
    Element,
    ElementAtProvider,
    ElementCreateRequest,
    ElementError,
    ElementPage,
    ElementStatus,
    ProviderElementStatus,
    parse_element_request,
)
from kling_pipeline.domain.failures import public_failure_message
from kling_pipeline.domain.generation import utcnow
from kling_pipeline.domain.request import ElementRef, GenerationRequest
from kling_pipeline.domain.validation import invalid_input
from kling_pipeline.errors import FieldIssue, NoProviderAvailable, ProviderError
from kling_pipeline.ids import new_element_id
from kling_pipeline.observability import logger, metrics
from kling_pipeline.providers.base import (
    ElementSpec,
    Provider,
    ProviderElement,
    ProviderName,
    ProviderTask,
)
from kling_pipeline.providers.registry import get_providers, get_router
from kling_pipeline.providers.router import Router, least_bad
from kling_pipeline.services.inputs import check_images, presigned
from kling_pipeline.store.elements import get_element_store

# The providers with custom elements (docs/providers.md); kling3api has none.
ELEMENT_PROVIDERS: tuple[ProviderName, ...] = (ProviderName.KLING, ProviderName.EVOLINK)
ID_PREFIX = "elm_"

# --------------------------------------------------------------------------------------------------
# Create, read, list, delete
# --------------------------------------------------------------------------------------------------


def create_element(body: Mapping[str, Any], *, tenant_id: str) -> Element:
    """Create a custom element at every enabled provider that offers elements; returns it `processing`.

    Raises `InvalidInput` for a bad body, `NoProviderAvailable` when no enabled provider has elements, and
    the provider's error when every provider refused for a reason that may pass (outage, throttling): then
    nothing is kept and the call can simply be repeated. Refusals that will not pass (bad image, content
    policy) are kept on a `failed` element so the caller can read why.
    """
    request = parse_element_request(body)
    # Rule 5 on the bytes of every s3:// image; each must be the tenant's own upload (as for generations).
    images = [("frontal_image", request.frontal_image)]
    images += [(f"reference_images[{index}]", url) for index, url in enumerate(request.reference_images)]
    check_images(images, tenant_id=tenant_id)
    providers = element_providers()
    if not providers:
        offered = ", ".join(name.value for name in ELEMENT_PROVIDERS)
        raise NoProviderAvailable(f"no enabled provider offers custom elements ({offered})")

    now = utcnow()
    element = Element(
        id=new_element_id(),
        tenant_id=tenant_id,
        status=ElementStatus.PROCESSING,
        name=request.name,
        description=request.description,
        frontal_image=request.frontal_image,
        reference_images=list(request.reference_images),
        created_at=now,
        updated_at=now,
    )
    store = get_element_store()
    store.create(element)  # first, so a crash mid-create leaves a record, never an orphan at a provider
    logger.append_keys(element_id=element.id)

    spec = _presigned_spec(request)
    records: dict[str, ElementAtProvider] = {}
    failures: list[ProviderError] = []
    for name, provider in providers.items():
        try:
            records[name.value] = _record(provider.create_element(spec, external_id=element.id))
        except ProviderError as exc:
            logger.warning(
                "element create failed at a provider",
                extra={"provider": name.value, "kind": exc.kind, "code": exc.code},
            )
            failures.append(exc)
            records[name.value] = _failed(exc.code, exc.message)

    if len(failures) == len(providers) and any(exc.kind != "final" for exc in failures):
        store.update(element.id, _mark_deleted)
        raise least_bad(failures)

    created = store.update(element.id, lambda current: current.with_providers(records))
    metrics.add_metric(name="ElementCreated", unit=MetricUnit.Count, value=1)
    return created or element.with_providers(records)


def get_element(tenant_id: str, element_id: str) -> Element:
    """The tenant's element, refreshed from the providers still working on it; NotFound otherwise."""
    return refresh(get_element_store().get_for_tenant(tenant_id, element_id))


def list_elements(tenant_id: str, *, limit: int, cursor: str | None) -> ElementPage:
    """Newest first; every element on the page that is not settled is refreshed (bounded as for GET)."""
    page = get_element_store().list_for_tenant(tenant_id, limit=limit, cursor=cursor)
    return page.model_copy(update={"items": [refresh(item) for item in page.items]})


def delete_element(tenant_id: str, element_id: str) -> None:
    """Delete at the providers that can (Kling), then mark ours deleted: it answers 404 from now on.

    An element still being created at a provider is refreshed first so a finished one is deleted there
    too; one still in the works cannot be deleted at the provider (it has no id yet) and stays there.
    A provider that cannot be reached fails the call (502) and nothing is marked: the caller repeats it.
    """
    store = get_element_store()
    element = refresh(store.get_for_tenant(tenant_id, element_id))
    providers = get_providers()
    for name, record in element.providers.items():
        provider = providers.get(ProviderName(name))
        if provider is None or record.element_id is None:
            continue
        try:
            provider.delete_element(_provider_element(name, record))
        except ProviderError as exc:
            if exc.kind != "final":
                raise
            # Already gone, or never deletable there: nothing left to do at this provider.
            logger.info("provider refused the element delete", extra={"provider": name, "code": exc.code})
    store.update(element_id, _mark_deleted)
    metrics.add_metric(name="ElementDeleted", unit=MetricUnit.Count, value=1)


def element_providers() -> dict[ProviderName, Provider]:
    """The enabled providers that offer custom elements."""
    enabled = get_providers()
    return {name: enabled[name] for name in ELEMENT_PROVIDERS if name in enabled}


# --------------------------------------------------------------------------------------------------
# Refresh (the element's own async lifecycle)
# --------------------------------------------------------------------------------------------------


def refresh(element: Element) -> Element:
    """Ask each provider still working on `element` once, and store what moved forward.

    A provider that cannot be reached leaves its record as it was (a read never fails because a provider
    is down); a final refusal (e.g. the task is unknown there) fails the element at that provider.
    """
    pending = {name: record for name, record in element.providers.items() if not record.terminal}
    if not pending:
        return element
    providers = get_providers()
    overdue = utcnow() > element.created_at + timedelta(seconds=get_settings().task_deadline_s)
    updates: dict[str, ElementAtProvider] = {}
    for name, record in pending.items():
        fresh = _poll(providers.get(ProviderName(name)), name, record)
        if fresh is not None and fresh.terminal:
            updates[name] = fresh
        elif overdue:
            updates[name] = _failed("timeout", "the provider did not finish the element in time")
        elif fresh is not None and fresh != record:
            updates[name] = fresh

    if not updates:
        return element

    def mutate(current: Element) -> Element | None:
        if current.status is ElementStatus.DELETED:
            return None
        forward = {
            name: record
            for name, record in updates.items()
            if name in current.providers and not current.providers[name].terminal
        }
        return current.with_providers(forward) if forward else None

    updated = get_element_store().update(element.id, mutate)
    if updated is not None and updated.status is not element.status:
        logger.info(
            "element status changed", extra={"element_id": element.id, "status": updated.status.value}
        )
    return updated or element.with_providers(updates)


def _poll(provider: Provider | None, name: str, record: ElementAtProvider) -> ElementAtProvider | None:
    if provider is None or record.task_id is None:
        return None  # provider no longer enabled, or no task to ask about: only the deadline can end it
    try:
        return _record(provider.get_element(_provider_element(name, record)))
    except ProviderError as exc:
        if exc.kind == "final":
            return _failed(exc.code, exc.message)
        logger.warning("element refresh failed", extra={"provider": name, "kind": exc.kind, "code": exc.code})
        return None


# --------------------------------------------------------------------------------------------------
# Generations that reference elements
# --------------------------------------------------------------------------------------------------


def resolve_elements(request: GenerationRequest, *, tenant_id: str) -> dict[ProviderName, dict[str, str]]:
    """For each provider, our element id → that provider's element id, for the elements `request` names.

    Raises `InvalidInput` (one issue per bad `elements[i].element_id`) for an element that is unknown,
    another tenant's or deleted (all "unknown element"), still processing, or failed. A provider that
    holds only some of the elements maps only those; `ElementMapped` rules it out.
    """
    store = get_element_store()
    seen: dict[str, Element | None] = {}
    issues: list[FieldIssue] = []
    mapping: dict[ProviderName, dict[str, str]] = {}
    for index, ref in enumerate(request.elements):
        field = f"elements[{index}].element_id"
        element_id = ref.element_id
        if element_id not in seen:
            found = store.get(element_id) if element_id.startswith(ID_PREFIX) else None
            seen[element_id] = refresh(found) if found is not None and found.tenant_id == tenant_id else None
        element = seen[element_id]
        if element is None or element.status is ElementStatus.DELETED:
            issues.append(FieldIssue(field, f"unknown element {element_id}"))
        elif element.status is ElementStatus.PROCESSING:
            issues.append(
                FieldIssue(field, f"element {element_id} is still processing; retry when its status is ready")
            )
        elif element.status is ElementStatus.FAILED:
            reason = element.error.message if element.error else "creation failed"
            issues.append(FieldIssue(field, f"element {element_id} failed ({reason}); create it again"))
        else:
            for name, record in element.providers.items():
                if record.ready and record.element_id is not None:
                    mapping.setdefault(ProviderName(name), {})[element_id] = record.element_id
    if issues:
        raise invalid_input(issues)
    return mapping


def element_router(request: GenerationRequest, *, tenant_id: str) -> Router:
    """A router like `get_router()` whose providers submit with their own ids for `request`'s elements,
    and where a provider lacking any of them is unsupported (so never chosen, and refused when pinned)."""
    base = get_router()
    mapping = resolve_elements(request, tenant_id=tenant_id)
    wrapped: dict[ProviderName, Provider] = {
        name: ElementMapped(provider, mapping.get(name, {})) for name, provider in base.providers.items()
    }
    return Router(wrapped, base.pricing)


class ElementMapped:
    """A provider whose requests name our element ids, translated to the provider's own on the way out.

    Everything but capability and submit is the wrapped provider's (queries, callbacks, cancel never
    carry element ids).
    """

    def __init__(self, provider: Provider, element_ids: Mapping[str, str]) -> None:
        self.inner = provider
        self.element_ids = dict(element_ids)
        self.name = provider.name
        self.supports_callbacks = provider.supports_callbacks
        self.supports_cancel = provider.supports_cancel
        self.lost_create = provider.lost_create

    def unsupported_reason(self, request: GenerationRequest) -> str | None:
        reason = self.inner.unsupported_reason(request)
        if reason is not None:
            return reason
        missing = [ref.element_id for ref in request.elements if ref.element_id not in self.element_ids]
        if missing:
            return f"element {missing[0]} is not available at {self.name.value}"
        return None

    def rewrite(self, request: GenerationRequest) -> GenerationRequest:
        """`request` with each element id replaced by this provider's id for it."""
        refs = [ElementRef(element_id=self.element_ids[ref.element_id]) for ref in request.elements]
        return request.model_copy(update={"elements": refs})

    def build_submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> tuple[str, dict[str, Any]]:
        return self.inner.build_submit(
            self.rewrite(request), callback_url=callback_url, external_task_id=external_task_id
        )

    def submit(
        self, request: GenerationRequest, *, callback_url: str | None, external_task_id: str
    ) -> ProviderTask:
        return self.inner.submit(
            self.rewrite(request), callback_url=callback_url, external_task_id=external_task_id
        )

    def query(self, task_id: str) -> ProviderTask:
        return self.inner.query(task_id)

    def find_by_external_id(
        self, external_task_id: str, request: GenerationRequest | None = None
    ) -> ProviderTask | None:
        return self.inner.find_by_external_id(external_task_id, request)

    def cancel(self, task_id: str) -> bool:
        return self.inner.cancel(task_id)

    def parse_callback(self, body: dict[str, Any]) -> str | None:
        return self.inner.parse_callback(body)

    def create_element(self, spec: ElementSpec, *, external_id: str) -> ProviderElement:
        return self.inner.create_element(spec, external_id=external_id)

    def get_element(self, element: ProviderElement) -> ProviderElement:
        return self.inner.get_element(element)

    def delete_element(self, element: ProviderElement) -> None:
        self.inner.delete_element(element)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _record(element: ProviderElement) -> ElementAtProvider:
    error = _public_error(element.error.code, element.error.message) if element.error else None
    status: ProviderElementStatus = element.status
    if status == "ready" and element.element_id is None:
        status = "processing"  # ready without an id is of no use: ask again next time
    return ElementAtProvider(
        status=status,
        element_id=element.element_id,
        task_id=element.task_id,
        error=error,
    )


def _failed(code: str, message: str) -> ElementAtProvider:
    return ElementAtProvider(status="failed", error=_public_error(code, message))


def _public_error(code: str, message: str) -> ElementError:
    """The error as the tenant reads it: a provider's own text is logged, replaced by its code's sentence."""
    public = public_failure_message(code, message, element=True)
    if public != message:
        logger.info("provider element failure text", extra={"code": code, "provider_message": message})
    return ElementError(code=code, message=public)


def _provider_element(name: str, record: ElementAtProvider) -> ProviderElement:
    return ProviderElement(
        provider=ProviderName(name),
        element_id=record.element_id,
        task_id=record.task_id,
        status=record.status,
    )


def _mark_deleted(element: Element) -> Element | None:
    if element.status is ElementStatus.DELETED:
        return None
    return element.model_copy(update={"status": ElementStatus.DELETED, "deleted_at": utcnow()})


def _presigned_spec(request: ElementCreateRequest) -> ElementSpec:
    """The spec as providers must see it: s3:// images as presigned GET URLs."""
    return ElementSpec(
        name=request.name,
        description=request.description,
        frontal_image=presigned(request.frontal_image),
        reference_images=[presigned(url) for url in request.reference_images],
    )
