"""The one place a raised error becomes an HTTP response (DESIGN.md §4 error body).

Core code raises domain errors (`kling_pipeline.errors`) and never thinks about HTTP; the HTTP functions
(API and provider callbacks) install these handlers on their resolver with `register_error_handlers`, so
both answer in the same shape:

    {"error": {"code": "validation_error", "message": "...", "details": [{"field": "...", "issue": "..."}]}}

Mapping is by exception class and its `code`/`status_code` attributes, never by message text. Anything
unexpected becomes a 500 whose body carries only the request id: the stack trace goes to the log, never
to the caller. Provider failures (502) get a fixed message, because a provider's own text can name
accounts, quotas or internal hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError

from kling_pipeline.errors import FieldIssue, PipelineError, ProviderError
from kling_pipeline.observability import logger

Details = Sequence[FieldIssue] | Mapping[str, str]

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

# API Gateway accepts 10 MB; a generation request is a few KB (media travel as URLs), so anything past
# 1 MiB is a mistake or abuse and is refused before it is parsed.
MAX_BODY_BYTES = 1024 * 1024

INTERNAL_ERROR_MESSAGE = "internal error"
PROVIDER_ERROR_MESSAGE = "the video provider could not process the request; try again later"


class PayloadTooLarge(PipelineError):
    """The request body is over `MAX_BODY_BYTES` (an HTTP-edge rule, so it lives here, not in core)."""

    code = "payload_too_large"
    status_code = 413


def ensure_body_size(size: int) -> None:
    """Refuse a body of `size` bytes when it is over the limit; called before anything parses it."""
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is {size} bytes; the limit is {MAX_BODY_BYTES}")


def error_body(
    code: str,
    message: str,
    *,
    details: Details = (),
    request_id: str | None = None,
) -> dict[str, Any]:
    """The error body of DESIGN.md §4; `details` and `request_id` only when there is something to say.
    `details` is one entry per invalid field, or an object of figures (`budget_exceeded`)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if isinstance(details, Mapping):
        error["details"] = dict(details)
    elif details:
        error["details"] = [{"field": issue.field, "issue": issue.issue} for issue in details]
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Details = (),
    request_id: str | None = None,
) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(code, message, details=details, request_id=request_id),
    )


def internal_error_response(exc: Exception, *, request_id: str | None) -> Response[dict[str, Any]]:
    """An unexpected failure: the stack is logged; the caller gets only the id to quote to support."""
    logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", INTERNAL_ERROR_MESSAGE, request_id=request_id
    )


def pipeline_error_response(exc: PipelineError, *, request_id: str | None = None) -> Response[dict[str, Any]]:
    """A domain error as its response: status and code from the class, details for invalid input.

    New `PipelineError` subclasses map themselves through their `code`/`status_code`; only provider errors
    and 5xx need care, because their messages are not written for end users.
    """
    if isinstance(exc, ProviderError):
        # `exc.code` is the provider-side reason (content_policy, rate_limited, ...): logged, not returned.
        logger.warning(
            "provider error reached the API",
            extra={
                "provider": exc.provider,
                "kind": exc.kind,
                "provider_error_code": exc.code,
                "provider_code": exc.provider_code,
                "provider_http_status": exc.http_status,
            },
        )
        return error_response(HTTPStatus.BAD_GATEWAY, "provider_error", PROVIDER_ERROR_MESSAGE)
    if exc.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return internal_error_response(exc, request_id=request_id)
    # Code and status only: the message and details may quote the caller's input.
    logger.info("request refused", extra={"error_code": exc.code, "status": exc.status_code})
    return error_response(exc.status_code, exc.code, exc.message, details=getattr(exc, "details", ()))


def request_validation_response(exc: RequestValidationError) -> Response[dict[str, Any]]:
    """Powertools' validation errors in our format: 400 for unparsable JSON, else 422 with field details.

    Powertools prefixes each location with where the value came from (`body`, `query`, `path`); users
    know only their field names, so the prefix is dropped and the rest goes through the same converter
    as every other entry point (S3 jobs, EventBridge), which also strips pydantic's URLs and input echoes.
    """
    from kling_pipeline.domain.validation import invalid_input, issues_from_errors

    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_json", "request body is not valid JSON")
    issues = issues_from_errors(
        cast(Any, {**error, "loc": tuple(error.get("loc", ()))[1:]}) for error in errors
    )
    if not issues:  # pragma: no cover - Powertools never raises without errors
        issues = [FieldIssue("body", "is invalid")]
    return pipeline_error_response(invalid_input(issues))


def unsupported_media_type_response() -> Response[dict[str, Any]]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the request body must be application/json",
    )


def route_not_found_response() -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "no such route")


def service_error_response(exc: ServiceError, *, request_id: str | None) -> Response[dict[str, Any]]:
    """Powertools' own HTTP errors (raised by its middlewares), in our shape."""
    status = HTTPStatus(exc.status_code)
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return internal_error_response(exc, request_id=request_id)
    message = exc.msg if isinstance(exc.msg, str) else status.phrase
    return error_response(status, status.phrase.lower().replace(" ", "_").replace("-", "_"), message)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Install the mapping on `app`. Powertools picks the handler of the closest class in the MRO, so the
    catch-all `Exception` handler never shadows a more specific one. The request-validation pieces are
    imported only for a resolver that validates (the API): the callback handler's cold start skips them."""

    def request_id() -> str | None:
        # API Gateway's id: the caller sees it as `x-amzn-RequestId`, the logs carry it as correlation id.
        return app.current_event.request_context.request_id

    handlers: dict[type[Exception], Callable[[Any], Response[dict[str, Any]]]] = {
        PipelineError: lambda exc: pipeline_error_response(exc, request_id=request_id()),
        NotFoundError: lambda _exc: route_not_found_response(),
        ServiceError: lambda exc: service_error_response(exc, request_id=request_id()),
        Exception: lambda exc: internal_error_response(exc, request_id=request_id()),
    }
    if getattr(app, "_enable_validation", False):
        from aws_lambda_powertools.event_handler.openapi.exceptions import (
            RequestUnsupportedContentType,
            RequestValidationError,
        )

        handlers[RequestValidationError] = request_validation_response
        handlers[RequestUnsupportedContentType] = lambda _exc: unsupported_media_type_response()
        app._request_validation_middleware = json_only_request_validation()
    for exc_class, handler in handlers.items():
        app.exception_handler(exc_class)(handler)


def json_only_request_validation() -> Any:
    """The API resolver's request validator (built on first use: it needs Powertools' OpenAPI machinery)."""
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
        OpenAPIRequestValidationMiddleware,
    )
    from aws_lambda_powertools.event_handler.openapi.exceptions import (
        RequestUnsupportedContentType,
        RequestValidationError,
    )

    class JsonOnlyRequestValidation(OpenAPIRequestValidationMiddleware):
        """Powertools' request validation, but a body must be JSON: Powertools also parses form and multipart
        bodies, which our routes never take (and a multipart type without a boundary crashed it into a 500),
        and a body that is not UTF-8 is unparsable JSON (400), not a crash. Installed as the resolver's
        request validator by `register_error_handlers`."""

        def _get_body(self, app: Any) -> Any:
            content_type = app.current_event.headers.get("content-type", "").strip().lower()
            if content_type and not content_type.startswith(content_types.APPLICATION_JSON):
                raise RequestUnsupportedContentType("Unsupported content type", [])
            try:
                return super()._get_body(app)
            except UnicodeDecodeError:
                raise RequestValidationError([{"type": "json_invalid", "loc": ("body",)}]) from None

    return JsonOnlyRequestValidation()  # type: ignore[no-untyped-call]
