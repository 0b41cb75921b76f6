"""The API handler's own behaviour, driven with the sample API Gateway events of events/api/.

Only what the handler decides before a service touches AWS is covered here: request validation and its
error bodies, body limits, the tenant check, routing, OpenAPI and docs. Answers that need the services
(201/202 bodies, another tenant's 404, idempotency) belong to the integration tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from functions.api.app import lambda_handler
from kling_pipeline.api_errors import MAX_BODY_BYTES

Event = Callable[[str], dict[str, Any]]

VALID_T2V: dict[str, Any] = {"mode": "text-to-video", "prompt": "A paper boat drifts down a rainy street"}


def call(event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def with_body(event: dict[str, Any], body: Any) -> dict[str, Any]:
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def with_query(event: dict[str, Any], **params: str) -> dict[str, Any]:
    event["queryStringParameters"] = params
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in params.items()}
    return event


def assert_sanitized(raw: str) -> None:
    for leak in ("Traceback", "errors.pydantic.dev", "input_value", 'File "'):
        assert leak not in raw


def fields(body: dict[str, Any]) -> list[str]:
    return [detail["field"] for detail in body["error"]["details"]]


# ---- request validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "expected_fields"),
    [
        pytest.param({"prompt": "no mode"}, ["mode"], id="missing-required"),
        pytest.param({**VALID_T2V, "colour": "red"}, ["colour"], id="unknown-field"),
        pytest.param({**VALID_T2V, "prompt": "x" * 2501}, ["prompt"], id="prompt-too-long"),
        pytest.param({**VALID_T2V, "aspect_ratio": "4:3"}, ["aspect_ratio"], id="enum"),
        pytest.param(
            {
                "mode": "text-to-video",
                "shots": [{"prompt": "a", "duration": 3}, {"prompt": "b", "duration": "x"}],
            },
            ["shots[1].duration"],
            id="nested-list-type",
        ),
        pytest.param(
            {
                "mode": "text-to-video",
                "shots": [{"prompt": "a", "duration": 4}, {"prompt": "b", "duration": 0}],
            },
            ["shots[1].duration"],
            id="nested-list-bound",
        ),
        pytest.param(
            {"mode": "reference-to-video", "video": {"url": "s3://my-bucket/in.avi"}, "aspect_ratio": "16:9"},
            ["video.url"],
            id="nested-model",
        ),
        pytest.param({**VALID_T2V, "cfg_scale": 0.5}, ["cfg_scale"], id="model-validator-capability"),
        pytest.param(
            {
                "mode": "image-to-video",
                "first_frame": "https://cdn.example.com/a.jpg",
                "sound": True,
                "video": {"url": "s3://my-bucket/in.mp4"},
            },
            ["sound"],
            id="model-validator-cross-field",
        ),
        pytest.param(
            {**VALID_T2V, "webhook_url": "http://169.254.169.254/latest/meta-data"},
            ["webhook_url"],
            id="field-validator-webhook",
        ),
    ],
)
@pytest.mark.parametrize("route", ["api/create_generation", "api/create_estimate"])
def test_invalid_body_answers_422_with_the_field_paths(
    event: Event, lambda_context: Any, route: str, request_body: dict[str, Any], expected_fields: list[str]
) -> None:
    # Given a request body that breaks a rule
    request = with_body(event(route), request_body)

    # When it is posted
    status, body = call(request, lambda_context)

    # Then it is refused with our error body, naming the fields as the user wrote them
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert set(expected_fields) <= set(fields(body))
    assert body["error"]["message"].startswith("invalid request: ")
    assert all(set(detail) == {"field", "issue"} for detail in body["error"]["details"])
    assert_sanitized(json.dumps(body))


def test_validation_errors_do_not_echo_secrets(event: Event, lambda_context: Any) -> None:
    # Given a webhook URL carrying credentials
    request = with_body(
        event("api/create_generation"),
        {**VALID_T2V, "webhook_url": "https://admin:hunter2-secret@hooks.example.com/video"},
    )

    # When it is posted
    response = lambda_handler(request, lambda_context)

    # Then the URL is refused without repeating it
    assert response["statusCode"] == 422
    assert fields(json.loads(response["body"])) == ["webhook_url"]
    assert "hunter2-secret" not in response["body"]


def test_every_problem_is_reported_at_once(event: Event, lambda_context: Any) -> None:
    request = with_body(event("api/create_generation"), {"mode": "sideways", "duration": "long", "extra": 1})

    status, body = call(request, lambda_context)

    assert status == 422
    assert set(fields(body)) == {"mode", "duration", "extra"}
    assert body["error"]["message"].endswith("(and 2 more)")


@pytest.mark.parametrize(
    ("raw_body", "expected_issue_field"),
    [("[1, 2]", "body"), ('"just a string"', "body"), ("", "body"), ("null", "body")],
)
def test_a_body_that_is_not_a_json_object_answers_422(
    event: Event, lambda_context: Any, raw_body: str, expected_issue_field: str
) -> None:
    status, body = call(with_body(event("api/create_generation"), raw_body), lambda_context)

    assert status == 422
    assert fields(body) == [expected_issue_field]


@pytest.mark.parametrize("raw_body", ['{"mode": "text-to-video",', "{'mode': 'text-to-video'}", "not json"])
def test_malformed_json_answers_400(event: Event, lambda_context: Any, raw_body: str) -> None:
    status, body = call(with_body(event("api/create_generation"), raw_body), lambda_context)

    assert status == 400
    assert body == {"error": {"code": "invalid_json", "message": "request body is not valid JSON"}}


def test_unsupported_content_type_answers_415(event: Event, lambda_context: Any) -> None:
    request = with_body(event("api/create_generation"), "mode=text-to-video")
    request["headers"]["Content-Type"] = "text/plain"
    request["multiValueHeaders"]["Content-Type"] = ["text/plain"]

    status, body = call(request, lambda_context)

    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"


# ---- body size ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_body",
    [
        json.dumps({**VALID_T2V, "metadata": {"note": "x" * MAX_BODY_BYTES}}),  # valid shape, too big
        json.dumps({**VALID_T2V, "prompt": "x" * MAX_BODY_BYTES}),  # invalid and too big: size wins
        "{" + " " * MAX_BODY_BYTES,  # malformed and too big: size wins
    ],
    ids=["valid-shape", "invalid-shape", "malformed"],
)
def test_oversize_body_answers_413_before_parsing(event: Event, lambda_context: Any, raw_body: str) -> None:
    status, body = call(with_body(event("api/create_generation"), raw_body), lambda_context)

    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert "details" not in body["error"]


def test_size_limit_counts_bytes_not_characters(event: Event, lambda_context: Any) -> None:
    # Given a body under the limit in characters but over it in UTF-8 bytes
    prompt = "é" * (MAX_BODY_BYTES // 2 + 10)

    request = with_body(event("api/create_estimate"), {**VALID_T2V, "prompt": prompt})

    status, _ = call(request, lambda_context)

    assert status == 413


# ---- tenant -------------------------------------------------------------------------------------------


def without_tenant(event: dict[str, Any]) -> dict[str, Any]:
    event["requestContext"]["identity"]["apiKeyId"] = None
    return event


@pytest.mark.parametrize(
    "route", ["api/list_generations", "api/get_generation", "api/cancel_generation", "api/create_generation"]
)
def test_missing_tenant_answers_401(event: Event, lambda_context: Any, route: str) -> None:
    # Given a request that reached the function without an API key id (a valid body where there is one)
    request = without_tenant(event(route))

    # When it is handled
    status, body = call(request, lambda_context)

    # Then it is refused before any service is called
    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": "missing or unknown API key"}}


def test_empty_tenant_answers_401(event: Event, lambda_context: Any) -> None:
    request = event("api/list_generations")
    request["requestContext"]["identity"]["apiKeyId"] = ""

    status, _ = call(request, lambda_context)

    assert status == 401


# ---- query parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected_fields"),
    [
        ({"status": "done"}, ["status"]),
        ({"limit": "0"}, ["limit"]),
        ({"limit": "101"}, ["limit"]),
        ({"limit": "ten"}, ["limit"]),
        ({"status": "nope", "limit": "500"}, ["status", "limit"]),
    ],
)
def test_invalid_list_query_answers_422(
    event: Event, lambda_context: Any, params: dict[str, str], expected_fields: list[str]
) -> None:
    status, body = call(with_query(event("api/list_generations"), **params), lambda_context)

    assert status == 422
    assert fields(body) == expected_fields


# ---- routing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing-here"),
        ("DELETE", "/v1/generations/gen_01JD3Z8Q6N7V5X2K9P4R1T0W8Y"),
        ("GET", "/v2/generations"),
    ],
)
def test_unknown_route_answers_404_in_our_format(
    event: Event, lambda_context: Any, method: str, path: str
) -> None:
    request = event("api/get_generation")
    request["httpMethod"] = method
    request["path"] = path

    status, body = call(request, lambda_context)

    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "no such route"}}


# ---- OpenAPI and docs ---------------------------------------------------------------------------------


def test_openapi_document_lists_the_routes_and_the_api_key_scheme(event: Event, lambda_context: Any) -> None:
    response = lambda_handler(event("api/get_openapi"), lambda_context)

    assert response["statusCode"] == 200
    schema = json.loads(response["body"])
    assert schema["info"]["title"] == "kling-pipeline"
    assert {
        "/v1/generations",
        "/v1/generations/{generation_id}",
        "/v1/generations/{generation_id}/cancel",
        "/v1/estimates",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/v1/generations"]) == {"get", "post"}
    assert schema["components"]["securitySchemes"] == {
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}
    }
    assert schema["security"] == [{"apiKey": []}]
    # The request body is the unified request, documented field by field.
    post = schema["paths"]["/v1/generations"]["post"]
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.endswith("/GenerationRequest")
    assert {"mode", "prompt", "shots", "webhook_url"} <= set(
        schema["components"]["schemas"]["GenerationRequest"]["properties"]
    )
    # The tenant is not a parameter callers can set, and the docs routes are not API operations.
    parameters = {param["name"] for param in schema["paths"]["/v1/generations"]["get"]["parameters"]}
    assert parameters == {"status", "mode", "provider", "created_after", "created_before", "limit", "cursor"}
    assert "/docs" not in schema["paths"] and "/openapi.json" not in schema["paths"]


def test_openapi_document_is_the_contract_clients_are_generated_from(
    event: Event, lambda_context: Any
) -> None:
    schema = json.loads(lambda_handler(event("api/get_openapi"), lambda_context)["body"])
    schemas = schema["components"]["schemas"]

    # Create answers 202 with a typed resource and says how replays are marked.
    created = schema["paths"]["/v1/generations"]["post"]["responses"]
    assert "200" not in created
    assert created["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/GenerationResource")
    assert "Idempotent-Replayed" in created["202"]["headers"]
    assert {"400", "401", "402", "403", "409", "413", "415", "422", "429", "500"} <= set(created)
    assert {"id", "status", "outputs", "created_at"} <= set(schemas["GenerationResource"]["properties"])
    # Every error of every operation is our error body; the framework's {detail: [...]} is gone.
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, path, status)
                elif status != "204":
                    assert "$ref" in answer["content"]["application/json"]["schema"], (method, path)
    assert set(schemas["ErrorInfo"]["properties"]) >= {"code", "message", "details"}


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_docs_page_serves_html(event: Event, lambda_context: Any, path: str) -> None:
    # (the page is set up on its first request; a trailing slash reaches it as Powertools' routing allows)
    request = event("api/get_docs")
    request["path"] = path
    response = lambda_handler(request, lambda_context)

    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["text/html"]
    assert "swagger" in response["body"].lower()
    assert "x-api-key" in response["body"]


@pytest.mark.parametrize(
    ("content_type", "raw", "status", "code"),
    [
        pytest.param(
            "multipart/form-data", "--x--", 415, "unsupported_media_type", id="multipart-no-boundary"
        ),
        pytest.param(
            "application/x-www-form-urlencoded",
            "mode=text-to-video",
            415,
            "unsupported_media_type",
            id="form",
        ),
    ],
)
def test_only_json_bodies_are_taken(
    event: Event, lambda_context: Any, content_type: str, raw: str, status: int, code: str
) -> None:
    request = with_body(event("api/create_generation"), raw)
    request["headers"] = {**(request.get("headers") or {}), "Content-Type": content_type}
    request["multiValueHeaders"] = {name: [value] for name, value in request["headers"].items()}

    answer, body = call(request, lambda_context)

    assert (answer, body["error"]["code"]) == (status, code)


def test_a_body_that_is_not_utf8_is_invalid_json_not_a_crash(event: Event, lambda_context: Any) -> None:
    request = event("api/create_generation")
    request["body"] = "1dUK"  # base64 of bytes that are not UTF-8
    request["isBase64Encoded"] = True

    answer, body = call(request, lambda_context)

    assert (answer, body["error"]["code"]) == (400, "invalid_json")


def test_playground_page_needs_no_key_and_forbids_foreign_scripts(event: Event, lambda_context: Any) -> None:
    request = event("api/get_docs")
    request["path"] = request["resource"] = "/playground"
    request["requestContext"]["identity"]["apiKeyId"] = None

    response = lambda_handler(request, lambda_context)

    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["text/html; charset=utf-8"]
    assert "script-src 'unsafe-inline'" in response["multiValueHeaders"]["Content-Security-Policy"][0]
    assert "<title>kling-pipeline playground</title>" in response["body"]
    assert 'id="api-key"' in response["body"]
