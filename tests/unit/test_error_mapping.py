"""The error table of `kling_pipeline.api_errors`: each error → status and body, never a stack trace.

Errors are raised from the routes of a throwaway resolver with the handlers installed, so the mapping is
checked exactly as the API and callback functions use it, without any service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, InternalServerError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from kling_pipeline.api_errors import (
    PROVIDER_ERROR_MESSAGE,
    PayloadTooLarge,
    ensure_body_size,
    register_error_handlers,
    request_validation_response,
)
from kling_pipeline.domain.validation import RuleViolations
from kling_pipeline.errors import (
    Conflict,
    FieldIssue,
    InvalidInput,
    NoProviderAvailable,
    NotFound,
    PipelineError,
    ProviderError,
    Unauthorized,
)

Event = Callable[[str], dict[str, Any]]
SECRET = "sk-live-DO-NOT-LEAK"


class BudgetExceeded(PipelineError):
    """A future error class: it maps itself through `code` and `status_code`."""

    code = "budget_exceeded"
    status_code = 429


def raising(exc: Exception, event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any], str]:
    """Resolve `event` on a resolver whose only route raises `exc`."""
    app = APIGatewayRestResolver(debug=True)  # debug would print tracebacks if anything fell through
    register_error_handlers(app)

    @app.get("/v1/generations/<generation_id>")
    def boom(generation_id: str) -> dict[str, Any]:
        raise exc

    response = app.resolve(event, context)
    return response["statusCode"], json.loads(response["body"]), response["body"]


@pytest.mark.parametrize(
    ("error", "status", "expected"),
    [
        pytest.param(
            InvalidInput(
                "invalid request: shots[1].duration: must be at least 1, got 0",
                [FieldIssue("shots[1].duration", "must be at least 1, got 0")],
            ),
            422,
            {
                "code": "validation_error",
                "message": "invalid request: shots[1].duration: must be at least 1, got 0",
                "details": [{"field": "shots[1].duration", "issue": "must be at least 1, got 0"}],
            },
            id="invalid-input",
        ),
        pytest.param(
            InvalidInput("something is off"),
            422,
            {"code": "validation_error", "message": "something is off"},
            id="invalid-input-without-details",
        ),
        pytest.param(
            NotFound("generation gen_1 not found"),
            404,
            {"code": "not_found", "message": "generation gen_1 not found"},
            id="not-found",
        ),
        pytest.param(
            Conflict("Idempotency-Key reused with a different body"),
            409,
            {"code": "conflict", "message": "Idempotency-Key reused with a different body"},
            id="conflict",
        ),
        pytest.param(
            Unauthorized("invalid or missing callback token"),
            401,
            {"code": "unauthorized", "message": "invalid or missing callback token"},
            id="unauthorized",
        ),
        pytest.param(
            NoProviderAvailable("no enabled provider supports 4k video-edit"),
            422,
            {"code": "no_provider", "message": "no enabled provider supports 4k video-edit"},
            id="no-provider",
        ),
        pytest.param(
            PayloadTooLarge("request body is 2000000 bytes; the limit is 1048576"),
            413,
            {"code": "payload_too_large", "message": "request body is 2000000 bytes; the limit is 1048576"},
            id="payload-too-large",
        ),
        pytest.param(
            BudgetExceeded("daily budget reached"),
            429,
            {"code": "budget_exceeded", "message": "daily budget reached"},
            id="future-subclass",
        ),
    ],
)
def test_domain_errors_map_to_status_and_body(
    event: Event, lambda_context: Any, error: Exception, status: int, expected: dict[str, Any]
) -> None:
    got_status, body, _ = raising(error, event("api/get_generation"), lambda_context)

    assert got_status == status
    assert body == {"error": expected}


@pytest.mark.parametrize(
    "error",
    [
        ProviderError("kling", "final", "content_policy", f"account {SECRET} flagged", provider_code="1301"),
        ProviderError(
            "evolink", "retryable", "provider_error", f"upstream 10.0.3.7 said {SECRET}", http_status=503
        ),
        ProviderError("kling3api", "throttled", "rate_limited", SECRET, http_status=429),
    ],
    ids=["final", "retryable", "throttled"],
)
def test_provider_errors_answer_502_with_a_safe_message(
    event: Event, lambda_context: Any, error: ProviderError
) -> None:
    status, body, raw = raising(error, event("api/get_generation"), lambda_context)

    assert status == 502
    assert body == {"error": {"code": "provider_error", "message": PROVIDER_ERROR_MESSAGE}}
    assert SECRET not in raw


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(f"database password is {SECRET}"),
        KeyError(SECRET),
        PipelineError(f"base class with {SECRET}"),
        InternalServerError(f"powertools 500 with {SECRET}"),
    ],
    ids=["runtime-error", "key-error", "bare-pipeline-error", "powertools-500"],
)
def test_unexpected_errors_answer_500_with_only_a_request_id(
    event: Event, lambda_context: Any, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    status, body, raw = raising(error, event("api/get_generation"), lambda_context)

    assert status == 500
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["message"] == "internal error"
    assert set(body["error"]) <= {"code", "message", "request_id"}
    for leak in (SECRET, "Traceback", 'File "', type(error).__name__):
        assert leak not in raw
    # The stack is in the log, for whoever holds the request id.
    assert any(record.exc_info and record.exc_info[1] is error for record in caplog.records)


def test_internal_error_body_carries_the_api_gateway_request_id(event: Event, lambda_context: Any) -> None:
    request = event("api/get_generation")

    status, body, _ = raising(RuntimeError("boom"), request, lambda_context)

    assert status == 500
    assert body["error"]["request_id"] == request["requestContext"]["requestId"]


def test_powertools_client_errors_keep_their_status_in_our_shape(event: Event, lambda_context: Any) -> None:
    status, body, _ = raising(BadRequestError("missing header"), event("api/get_generation"), lambda_context)

    assert status == 400
    assert body == {"error": {"code": "bad_request", "message": "missing header"}}


def test_unknown_route_is_404_in_our_shape(event: Event, lambda_context: Any) -> None:
    request = event("api/get_generation")
    request["path"] = "/v1/unknown"

    status, body, _ = raising(RuntimeError("not reached"), request, lambda_context)

    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "no such route"}}


# ---- Powertools request validation ------------------------------------------------------------------


def test_request_validation_drops_the_location_source_and_pydantic_details() -> None:
    # Given errors as Powertools reports them: location prefixed with the source, pydantic's URL and input
    error = RequestValidationError(
        [
            {
                "type": "int_parsing",
                "loc": ("body", "shots", 1, "duration"),
                "msg": "Input should be a valid integer",
                "input": SECRET,
                "url": "https://errors.pydantic.dev/2/v/int_parsing",
            },
            {
                "type": "less_than_equal",
                "loc": ("query", "limit"),
                "msg": "Input should be less than or equal to 100",
                "input": "500",
                "ctx": {"le": 100},
                "url": "https://errors.pydantic.dev/2/v/less_than_equal",
            },
        ]
    )

    response = request_validation_response(error)

    assert response.status_code == 422
    assert response.body == {
        "error": {
            "code": "validation_error",
            "message": "invalid request: shots[1].duration: must be an integer, got string (and 1 more)",
            "details": [
                {"field": "shots[1].duration", "issue": "must be an integer, got string"},
                {"field": "limit", "issue": "must be at most 100, got 500"},
            ],
        }
    }
    assert SECRET not in json.dumps(response.body)


def test_request_validation_expands_rule_violations() -> None:
    violations = RuleViolations([FieldIssue("sound", "must be false"), FieldIssue("video", "not used")])
    error = RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("body",),
                "msg": f"Value error, {violations}",
                "input": {},
                "ctx": {"error": violations},
            }
        ]
    )

    response = request_validation_response(error)

    assert response.status_code == 422
    assert response.body is not None
    assert response.body["error"]["details"] == [
        {"field": "sound", "issue": "must be false"},
        {"field": "video", "issue": "not used"},
    ]


def test_malformed_json_is_400_without_the_parser_message() -> None:
    error = RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 17),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": "Expecting ',' delimiter"},
            }
        ],
        body='{"mode": "text-to-video" "prompt": "x"}',
    )

    response = request_validation_response(error)

    assert response.status_code == 400
    assert response.body == {"error": {"code": "invalid_json", "message": "request body is not valid JSON"}}


# ---- body size --------------------------------------------------------------------------------------


def test_body_size_limit_is_inclusive() -> None:
    ensure_body_size(1024 * 1024)
    with pytest.raises(PayloadTooLarge):
        ensure_body_size(1024 * 1024 + 1)
