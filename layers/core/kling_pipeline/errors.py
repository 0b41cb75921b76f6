"""Domain errors. Raised anywhere in core; mapped to HTTP bodies in exactly one place (`api_errors`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one input field, addressed the way a user wrote it (`shots[1].duration`)."""

    field: str
    issue: str


class PipelineError(Exception):
    """Base of every error we raise on purpose; `code` is stable and machine-readable."""

    code = "internal_error"
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PipelineError):
    """The caller's input breaks a rule; nothing was submitted or written."""

    code = "validation_error"
    status_code = 422

    def __init__(self, message: str, details: list[FieldIssue] | None = None) -> None:
        super().__init__(message)
        self.details = details or []

    @classmethod
    def for_field(cls, field_name: str, issue: str) -> InvalidInput:
        return cls(f"{field_name}: {issue}", [FieldIssue(field_name, issue)])


class InvalidJson(PipelineError):
    """The body is not JSON we parse (malformed, or nested deeper than any request of ours)."""

    code = "invalid_json"
    status_code = 400


class NotFound(PipelineError):
    code = "not_found"
    status_code = 404


class Conflict(PipelineError):
    code = "conflict"
    status_code = 409


class Unauthorized(PipelineError):
    code = "unauthorized"
    status_code = 401


ProviderErrorKind = Literal["final", "retryable", "throttled"]


class ProviderError(PipelineError):
    """A provider said no, or could not be reached.

    `kind` drives everything downstream: `final` (bad request, content policy, auth) is never retried
    nor failed over; `retryable` (5xx, timeouts) is retried then failed over; `throttled` (429, Kling
    1302/1303) fails over, and when every provider is busy the generation is queued, never failed.
    `code` is ours (content_policy, bad_request, auth, rate_limited, provider_error, timeout, ...).
    """

    status_code = 502

    def __init__(
        self,
        provider: str,
        kind: ProviderErrorKind,
        code: str,
        message: str,
        *,
        provider_code: str | None = None,
        http_status: int | None = None,
        sent: bool = True,
        maybe_created: bool = False,
    ) -> None:
        super().__init__(f"{provider}: {code}: {message}")
        self.provider = provider
        self.kind: ProviderErrorKind = kind
        self.code = code
        self.message = message
        self.provider_code = provider_code
        self.http_status = http_status
        # False only when the request provably never left (connect errors): nothing can exist.
        self.sent = sent
        # Set by an adapter that knows an earlier attempt of the same create may have landed.
        self.maybe_created = maybe_created


class CreateUnconfirmed(ProviderError):
    """A create at `provider` failed in a way that does not prove no task was made (a timeout after
    sending, a cut connection, a 5xx): the generation must not go to another provider."""

    def __init__(self, cause: ProviderError) -> None:
        super().__init__(
            cause.provider,
            "retryable",
            "create_unconfirmed",
            cause.message,
            provider_code=cause.provider_code,
            http_status=cause.http_status,
            maybe_created=True,
        )


class BudgetExceeded(PipelineError):
    """The create would take the tenant past its monthly budget; nothing was written or submitted.
    `details` carries the figures (month, budget_usd, spent_usd, reserved_usd, estimate_usd)."""

    code = "budget_exceeded"
    status_code = 402

    def __init__(self, message: str, details: dict[str, str]) -> None:
        super().__init__(message)
        self.details = details


class NoProviderAvailable(PipelineError):
    """No enabled provider supports the request (a validation problem, not an outage)."""

    code = "no_provider"
    status_code = 422
