"""Least privilege, read straight from template.yaml (the deployed IAM is generated from these policies).

The callback function is internet-facing: it may only write the callback's receipt. Only the API uses the
idempotency table. S3 access is granted on the prefixes a function works in (inputs/, uploads/, outputs/),
never on the whole bucket, and the API's concurrency is capped by a parameter.
"""

from __future__ import annotations

from typing import Any

import pytest

from kling_local.stack.template import SERVERLESS_FUNCTION, Template
from tests.conftest import ROOT

TEMPLATE = Template.load(ROOT / "template.yaml")
FUNCTIONS = {resource.logical_id: resource for resource in TEMPLATE.of_type(SERVERLESS_FUNCTION)}

# SAM policy templates that would grant a whole bucket, or a table's full CRUD.
BUCKET_WIDE_TEMPLATES = {"S3ReadPolicy", "S3WritePolicy", "S3CrudPolicy", "S3FullAccessPolicy"}


def _policies(logical_id: str) -> list[Any]:
    return list(FUNCTIONS[logical_id].properties.get("Policies") or [])


def _statements(logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in _policies(logical_id):
        if isinstance(policy, dict) and "Statement" in policy:
            statements += policy["Statement"]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _sam_templates(logical_id: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for policy in _policies(logical_id):
        if isinstance(policy, dict) and "Statement" not in policy:
            for name, args in policy.items():
                found.setdefault(name, []).append(args)
    return found


def _text(node: Any) -> str:
    """An ARN as written: the string of a !Sub, or a !GetAtt / !Ref rendered as `<Logical.Attr>`."""
    if isinstance(node, str):
        return node
    if "Fn::Sub" in node:
        return str(node["Fn::Sub"])
    if "Fn::GetAtt" in node:
        return "<" + ".".join(node["Fn::GetAtt"]) + ">"
    if "Ref" in node:
        return "<" + node["Ref"] + ">"
    raise AssertionError(f"unexpected resource {node!r}")


def test_the_callback_function_may_only_put_the_receipt() -> None:
    templates = _sam_templates("CallbackFunction")
    assert not any(name.startswith("DynamoDB") for name in templates), templates
    dynamodb = [
        s for s in _statements("CallbackFunction") if any(a.startswith("dynamodb:") for a in _actions(s))
    ]
    assert [_actions(s) for s in dynamodb] == [["dynamodb:PutItem"]]
    assert [_text(r) for s in dynamodb for r in _resources(s)] == ["<GenerationsTable.Arn>"]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_only_the_api_reaches_the_idempotency_table(logical_id: str) -> None:
    uses_it = "IdempotencyTable" in repr(_policies(logical_id))
    assert uses_it == (logical_id == "ApiFunction")


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_s3_access_is_granted_on_prefixes_never_on_the_whole_bucket(logical_id: str) -> None:
    assert not BUCKET_WIDE_TEMPLATES & set(_sam_templates(logical_id))
    for statement in _statements(logical_id):
        s3_actions = [action for action in _actions(statement) if action.startswith("s3:")]
        if not s3_actions:
            continue
        assert "s3:*" not in s3_actions
        for resource in map(_text, _resources(statement)):
            if s3_actions == ["s3:ListBucket"]:
                assert resource.endswith("${MediaBucket}"), resource
                assert statement["Condition"]["StringLike"]["s3:prefix"] != "*"
                continue
            prefix = resource.split("${MediaBucket}/", 1)[1]
            assert prefix in ("inputs/*", "uploads/*", "outputs/*"), f"{logical_id}: {resource}"


def test_writes_to_the_bucket_are_confined_to_where_each_function_writes() -> None:
    writers: dict[str, set[str]] = {}
    for logical_id in FUNCTIONS:
        for statement in _statements(logical_id):
            if "s3:PutObject" in _actions(statement):
                prefixes = {_text(r).split("${MediaBucket}/", 1)[1] for r in _resources(statement)}
                writers.setdefault(logical_id, set()).update(prefixes)
    assert writers == {
        "ApiFunction": {"inputs/*"},  # POST /v1/uploads: presigned uploads of a tenant's inputs
        "IngestFunction": {"outputs/*"},
        "PollerFunction": {"outputs/*"},
        "S3TriggerFunction": {"uploads/*"},
    }


def test_the_api_concurrency_is_capped_by_a_parameter() -> None:
    parameter = TEMPLATE.parameters["ApiReservedConcurrency"]
    assert parameter["Type"] == "Number"
    assert int(parameter["Default"]) > 0
    reserved = FUNCTIONS["ApiFunction"].properties["ReservedConcurrentExecutions"]
    assert "ApiReservedConcurrency" in repr(reserved)
