"""template.yaml deploys right the first time, and what it skips of checkov says why.

A failed first create must leave nothing behind that makes the retry fail (the bucket has a fixed name);
a stack name that cannot name the bucket is refused before anything is created; both APIs write access logs
(never the callback token); every checkov check the template skips carries its reason next to the resource.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kling_local.stack.template import Template
from tests.conftest import ROOT

TEMPLATE = Template.load(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE.body["Resources"]
LONGEST_REGION = "ap-southeast-2"  # 14 characters, as long as any commercial region name


def test_a_failed_first_create_leaves_no_bucket_or_table_behind_but_deletes_keep_them() -> None:
    for logical_id in ("MediaBucket", "GenerationsTable"):
        assert RESOURCES[logical_id]["DeletionPolicy"] == "RetainExceptOnCreate", logical_id
        assert RESOURCES[logical_id]["UpdateReplacePolicy"] == "Retain", logical_id


@pytest.mark.parametrize("name", ["kling-pipeline", "k", "kling-prod-2", "a" * 28])
def test_a_deployment_name_that_can_name_the_bucket_is_accepted(name: str) -> None:
    pattern = TEMPLATE.parameters["DeploymentName"]["AllowedPattern"]
    assert re.fullmatch(pattern, name)
    bucket = f"{name}-media-123456789012-{LONGEST_REGION}"
    assert len(bucket) <= 63


@pytest.mark.parametrize(
    "name", ["Kling-Pipeline", "kling_pipeline", "-kling", "kling-", "a" * 29, "", "kling pipe"]
)
def test_a_deployment_name_that_cannot_name_the_bucket_is_refused(name: str) -> None:
    pattern = TEMPLATE.parameters["DeploymentName"]["AllowedPattern"]
    assert not re.fullmatch(pattern, name)


def test_the_deployment_name_must_be_the_stack_name_that_names_the_bucket() -> None:
    assertions = TEMPLATE.body["Rules"]["DeploymentNameIsTheStackName"]["Assertions"]
    assert {"Fn::Equals": [{"Ref": "DeploymentName"}, {"Ref": "AWS::StackName"}]} in [
        a["Assert"] for a in assertions
    ]
    assert RESOURCES["MediaBucket"]["Properties"]["BucketName"] == {
        "Fn::Sub": "${AWS::StackName}-media-${AWS::AccountId}-${AWS::Region}"
    }


@pytest.mark.parametrize("api", ["PublicApi", "CallbackApi"])
def test_every_api_stage_writes_access_logs_through_the_accounts_role(api: str) -> None:
    resource = RESOURCES[api]
    setting = resource["Properties"]["AccessLogSetting"]
    log_group = setting["DestinationArn"]["Fn::GetAtt"][0]
    assert RESOURCES[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert RESOURCES[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert "$context.requestId" in setting["Format"]
    # The stage can only log once the account's API Gateway CloudWatch role is set.
    assert resource["DependsOn"] == "ApiGatewayAccount"
    account = RESOURCES["ApiGatewayAccount"]
    assert "Condition" not in account
    assert "ApiGatewayCloudWatchRoleArn" in repr(account["Properties"]["CloudWatchRoleArn"])


def test_the_callback_access_log_never_holds_the_callback_token() -> None:
    log_format = RESOURCES["CallbackApi"]["Properties"]["AccessLogSetting"]["Format"]
    for leak in ("querystring", "$input", "requestOverride", "$context.requestUri", "token"):
        assert leak.lower() not in log_format.lower()


def test_the_created_cloudwatch_role_outlives_the_stack_but_not_a_failed_create() -> None:
    role = RESOURCES["ApiGatewayCloudWatchRole"]
    assert role["Condition"] == "CreatesApiGatewayCloudWatchRole"
    assert role["DeletionPolicy"] == "RetainExceptOnCreate"
    assert TEMPLATE.conditions["CreatesApiGatewayCloudWatchRole"] == {
        "Fn::Equals": [{"Ref": "ApiGatewayCloudWatchRoleArn"}, ""]
    }


def _checkov_skips() -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, skip)
        for logical_id, resource in RESOURCES.items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    ]


def test_every_skipped_checkov_check_carries_its_reason() -> None:
    skips = _checkov_skips()
    assert skips, "no checkov skips found: the Metadata layout changed"
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), (logical_id, skip)
        assert len(str(skip.get("comment", "")).split()) >= 6, (
            f"{logical_id} skips {skip['id']} without a reason"
        )


def test_no_check_is_skipped_that_the_template_could_pass() -> None:
    skipped = {skip["id"] for _, skip in _checkov_skips()}
    # Access logging (76) is on; the API's concurrency is reserved (115 is skipped only elsewhere).
    assert "CKV_AWS_76" not in skipped
    api_skips = {skip["id"] for logical_id, skip in _checkov_skips() if logical_id == "ApiFunction"}
    assert "CKV_AWS_115" not in api_skips


def test_the_poll_error_limit_is_a_parameter_and_giving_up_raises_the_alarm() -> None:
    machine = RESOURCES["FallbackStateMachine"]["Properties"]
    assert machine["DefinitionSubstitutions"]["PollErrorLimit"] == {"Ref": "FallbackMaxPollErrors"}
    definition = (ROOT / machine["DefinitionUri"]).read_text(encoding="utf-8")
    assert "${PollErrorLimit}" in definition
    states = json.loads(definition)["States"]
    assert {states["GaveUp"]["Type"], states["CouldNotGiveUp"]["Type"]} == {"Fail"}
    alarm = RESOURCES["FallbackExecutionsFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert alarm["Dimensions"][0]["Value"] == {"Ref": "FallbackStateMachine"}
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
