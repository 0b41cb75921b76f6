"""Cheapest-first provider choice with failover ("if it's down, we use the next cheapest available").

Failover happens only on answers that prove no task was created (`outcome.maybe_created`): a create that
may have landed (timeout after sending, cut connection, 5xx) raises `CreateUnconfirmed` and the
generation stays with that provider — never two paid tasks. A `final` answer (bad request, content
policy) stops the walk: another provider would refuse the same request, or worse, accept what one
provider's policy rejected; a refused key (`auth`) is that account's problem and fails over.
`retryable` and `throttled` refusals move on to the next provider. When every provider refused, the
least bad error is raised: `throttled` if any provider was merely busy (the pipeline then queues the
generation and retries later), else `retryable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from aws_lambda_powertools import Logger

from kling_pipeline.domain.pricing import Estimate, Pricing
from kling_pipeline.domain.request import GenerationRequest
from kling_pipeline.errors import CreateUnconfirmed, InvalidInput, NoProviderAvailable, ProviderError
from kling_pipeline.observability import SERVICE
from kling_pipeline.providers.base import Provider, ProviderName, ProviderTask
from kling_pipeline.providers.outcome import maybe_created

logger = Logger(service=SERVICE, child=True)

CallbackUrlFor = Callable[[ProviderName], str | None]


class Admission(Protocol):
    """Admission control (services/capacity.py): a slot on one of a provider's accounts before each
    create, given back when the create failed."""

    def take(self, provider: Provider) -> Provider | None:
        """The adapter of an account of `provider` on which a slot is now held; None when all are full."""

    def give_back(self, provider: Provider, error: ProviderError) -> None:
        """The create on the taken account failed: free the slot (back the account off if it was full)."""


class Router:
    """Orders the enabled providers for a request and submits with failover."""

    def __init__(self, providers: Mapping[ProviderName, Provider], pricing: Pricing) -> None:
        self.providers = dict(providers)
        self.pricing = pricing

    def estimate(self, request: GenerationRequest) -> Estimate:
        """Quotes for every enabled provider, unsupported ones carrying the adapter's reason."""
        unsupported = {
            name: provider.unsupported_reason(request) for name, provider in self.providers.items()
        }
        return self.pricing.estimate(request, self.providers, unsupported=unsupported)

    def plan(self, request: GenerationRequest) -> list[Provider]:
        """The providers to try, cheapest first; only the pinned one when `request.provider` is set."""
        estimate = self.estimate(request)
        if request.provider is not None:
            return [self._pinned(request.provider, estimate)]
        ranked = estimate.ranked()
        if not ranked:
            raise NoProviderAvailable(self._why_none(estimate))
        return [self.providers[name] for name in ranked]

    def submit(
        self,
        request: GenerationRequest,
        *,
        callback_url_for: CallbackUrlFor,
        external_task_id: str,
        admission: Admission | None = None,
        before_create: Callable[[Provider], None] | None = None,
    ) -> tuple[ProviderName, ProviderTask]:
        """Submit to the first provider that accepts: fail over on retryable/throttled, stop on final.
        With `admission`, a provider none of whose accounts has a free slot is skipped (throttled).
        `before_create(provider)` runs right before each create is sent (its slot held): what must be on
        record should the sender die before the answer is."""
        failures: list[ProviderError] = []
        for provider in self.plan(request):
            target = provider
            if admission is not None:
                taken = admission.take(provider)
                if taken is None:
                    failures.append(
                        ProviderError(
                            provider.name.value, "throttled", "no_capacity", "every account is busy"
                        )
                    )
                    continue
                target = taken
            if before_create is not None:
                before_create(provider)
            try:
                task = target.submit(
                    request, callback_url=callback_url_for(provider.name), external_task_id=external_task_id
                )
            except ProviderError as exc:
                if maybe_created(exc):
                    # A task of ours may exist there: another provider would make a second paid one, and
                    # the account's slot stays taken (the task may run; its lease frees it at the latest).
                    raise CreateUnconfirmed(exc) from exc
                if admission is not None:
                    admission.give_back(provider, exc)
                if exc.kind == "final" and exc.code != "auth":
                    raise
                logger.warning(
                    "provider failed, failing over",
                    extra={"provider": provider.name.value, "kind": exc.kind, "code": exc.code},
                )
                failures.append(exc)
                continue
            return provider.name, task
        raise least_bad(failures)

    def only(self, name: ProviderName) -> Router:
        """This router restricted to one provider (none when it is not enabled here)."""
        chosen = {name: self.providers[name]} if name in self.providers else {}
        return Router(chosen, self.pricing)

    # -- helpers -----------------------------------------------------------------------------------

    def _pinned(self, requested: str, estimate: Estimate) -> Provider:
        try:
            name = ProviderName(requested)
        except ValueError:
            choices = ", ".join(name.value for name in ProviderName)
            raise InvalidInput.for_field(
                "provider", f"unknown provider {requested!r}; one of {choices}"
            ) from None
        if name not in self.providers:
            enabled = ", ".join(n.value for n in self.providers) or "none"
            raise InvalidInput.for_field(
                "provider", f"{name.value} is not enabled on this stack (no credentials); enabled: {enabled}"
            )
        quote = next(q for q in estimate.quotes if q.provider is name)
        if not quote.supported:
            raise InvalidInput.for_field("provider", f"{name.value} cannot run this request: {quote.reason}")
        return self.providers[name]

    def _why_none(self, estimate: Estimate) -> str:
        if not self.providers:
            return "no provider is enabled: configure credentials for kling, evolink or kling3api"
        reasons = "; ".join(f"{quote.provider.value}: {quote.reason}" for quote in estimate.quotes)
        return f"no enabled provider supports this request ({reasons})"


def least_bad(failures: list[ProviderError]) -> ProviderError:
    """The error to surface when every provider failed: throttled (queue it) before retryable."""
    throttled = [exc for exc in failures if exc.kind == "throttled"]
    if throttled:
        return throttled[-1]
    if failures:
        return failures[-1]
    return ProviderError("router", "retryable", "provider_error", "no provider was tried")
