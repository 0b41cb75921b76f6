"""Exceptions: every API error carries the API's `code`, `message` and per-field `details`.

The class says what a caller can do about it (fix the input, fix the key, retry later); `code` is the
API's stable machine-readable reason (`validation_error`, `budget_exceeded`, …) for finer decisions.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class FieldDetail(BaseModel):
    field: str
    issue: str


class KlingPipelineError(Exception):
    """Base of everything this package raises."""


class ApiError(KlingPipelineError):
    """A non-2xx answer of the API."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[FieldDetail] | None = None,
        request_id: str | None = None,
        *,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        # The whole `error` object as sent: codes with structured details (e.g. the budget figures of
        # `budget_exceeded`) keep them here.
        self.error = error or {}
        self.code = code
        self.message = message
        self.details = details or []
        self.request_id = request_id
        fields = "; ".join(f"{d.field}: {d.issue}" for d in self.details)
        super().__init__(f"{status} {code}: {message}" + (f" ({fields})" if fields else ""))


class InvalidRequestError(ApiError):
    """400/413/415/422: the request is wrong; `details` names each field."""


class AuthenticationError(ApiError):
    """401/403: missing or unknown API key."""


class BudgetExceededError(ApiError):
    """402: the tenant's monthly budget would be exceeded."""


class NotFoundError(ApiError):
    """404: no such resource for this tenant."""


class ConflictError(ApiError):
    """409: the resource's state or an earlier use of the Idempotency-Key forbids it."""


class RateLimitedError(ApiError):
    """429 after the retries ran out."""


class ServerError(ApiError):
    """5xx after the retries ran out (quote `request_id` to support)."""


class WaitTimeoutError(KlingPipelineError):
    """`wait` gave up before the generation finished; `generation` is the last state seen."""

    def __init__(self, generation: Any, timeout_s: float) -> None:
        self.generation = generation
        super().__init__(f"{generation.id} still {generation.status} after {timeout_s:g} s")


class ChecksumMismatchError(KlingPipelineError):
    """A downloaded file's SHA-256 differs from the record's (the partial file is removed)."""


class WebhookVerificationError(KlingPipelineError):
    """A webhook's signature, id or timestamp does not check out."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: BudgetExceededError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
}


def error_from_response(status: int, body: Any) -> ApiError:
    """The exception for an error answer in our `{"error": {...}}` shape (or anything else)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": f"http_{status}", "message": str(body)[:500] if body else f"HTTP {status}"}
    raw = error.get("details")
    details = (
        [FieldDetail.model_validate(d) for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []
    )
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(
        status,
        str(error.get("code", f"http_{status}")),
        str(error.get("message", "")),
        details,
        error.get("request_id"),
        error=error,
    )
