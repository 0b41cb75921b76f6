"""The OpenAPI contract, checked by Schemathesis against the running local stack.

Schemathesis reads `/openapi.json`, generates requests for every operation from its schemas (valid ones
and, with the body/parameter mutations it applies, invalid ones) and checks that every answer is not a
5xx, has a documented status code and content type, and matches the documented schema (headers too).
The example count is bounded so the whole run stays around a minute on two cores.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kling_local.stack.runner import LocalStack

from .conftest import KEY_A

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def served_document() -> dict[str, Any]:
    """The document `GET /openapi.json` serves, built from the API's own resolver (the test below checks
    that the running stack serves exactly this)."""
    from functions.api.app import app
    from kling_pipeline.routes.contract import openapi_document

    document: dict[str, Any] = json.loads(openapi_document(app.get_openapi_json_schema()))
    return document


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_stack_serves_the_document_under_test(stack: LocalStack) -> None:
    assert httpx.get(f"{stack.api_url}/openapi.json", timeout=30).json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_documented_contract(case: Any, stack: LocalStack) -> None:
    case.call_and_validate(base_url=stack.api_url, headers={"x-api-key": KEY_A}, checks=CHECKS, timeout=30)
