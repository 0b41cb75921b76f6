"""`kling-pipeline local`: the stack built from a template, over real HTTP (front door, moto, simulator).

Most tests share one stack built from `fixtures/mini_template.yaml` (the real template's shapes, with the
fake handlers under `fixtures/fake_functions/`); the last ones start their own stack, one at a time.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest

from kling_local.stack import LocalStack
from kling_local.stack.template import Template
from tests.integration.waiting import wait_for

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
MINI_TEMPLATE = FIXTURES / "mini_template.yaml"
REPO = Path(__file__).resolve().parents[2]
KEY = {"x-api-key": "local-dev-key"}


def fake(name: str) -> Any:
    """A fake handler module, as the stack imported it (the template's directory is on sys.path)."""
    return importlib.import_module(f"fake_functions.{name}.app")


@pytest.fixture(scope="class")
def stack() -> Iterator[LocalStack]:
    # Given: a user environment that tunes a §7 name the template also sets
    saved = os.environ.get("FALLBACK_FIRST_POLL_S")
    os.environ["FALLBACK_FIRST_POLL_S"] = "5"
    local = LocalStack(
        template_path=MINI_TEMPLATE,
        simulator=True,
        env_overrides={"STACK_LABEL": "overridden"},
        max_visibility_timeout_s=1,
    )
    try:
        with local:
            yield local
    finally:
        if saved is None:
            os.environ.pop("FALLBACK_FIRST_POLL_S", None)
        else:
            os.environ["FALLBACK_FIRST_POLL_S"] = saved


class TestMiniStack:
    def test_front_door_builds_a_rest_proxy_event(self, stack: LocalStack) -> None:
        response = httpx.get(f"{stack.api_url}/v1/items/abc?x=1&x=2&y=3", headers=KEY)

        assert response.status_code == 200
        assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
        answer = response.json()
        event, context, env = answer["event"], answer["context"], answer["env"]
        assert event["resource"] == "/v1/items/{id}"
        assert event["path"] == "/v1/items/abc"
        assert event["httpMethod"] == "GET"
        assert event["pathParameters"] == {"id": "abc"}
        assert event["queryStringParameters"] == {"x": "2", "y": "3"}
        assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
        assert event["headers"]["x-api-key"] == "local-dev-key"
        assert event["multiValueHeaders"]["x-api-key"] == ["local-dev-key"]
        assert event["body"] is None and event["isBase64Encoded"] is False
        ctx = event["requestContext"]
        assert ctx["stage"] == "v1" and ctx["resourcePath"] == "/v1/items/{id}"
        assert ctx["path"] == "/v1/v1/items/abc"
        assert ctx["requestId"] and ctx["domainName"] == stack.api_url.removeprefix("http://")
        assert ctx["identity"]["sourceIp"] == "127.0.0.1"
        assert ctx["identity"]["apiKey"] == "local-dev-key"
        assert ctx["identity"]["apiKeyId"] == "demo"
        assert response.headers["x-amzn-requestid"] == ctx["requestId"]
        # Lambda context from the template (Globals MemorySize, Timeout)
        assert context["function_name"] == "kling-pipeline-local-ApiFunction"
        assert context["invoked_function_arn"].endswith(":function:kling-pipeline-local-ApiFunction")
        assert context["memory_limit_in_mb"] == 256
        assert 0 < context["remaining_ms"] <= 10_000
        # Environment: template refs resolved to local resources, user env and overrides win
        assert env["GENERATIONS_TABLE"] == "kling-pipeline-local-GenerationsTable"
        assert env["BUCKET_NAME"] == stack.bucket == "kling-pipeline-local-media-123456789012"
        assert env["EVENT_BUS_NAME"] == stack.event_bus_name == "kling-pipeline-local-bus"
        assert env["STATE_MACHINE_ARN"].endswith(":stateMachine:kling-pipeline-local-FallbackStateMachine")
        assert (
            env["SUBMIT_QUEUE_URL"]
            == f"{stack.aws_endpoint_url}/123456789012/kling-pipeline-local-SubmitQueue"
        )
        assert env["FALLBACK_FIRST_POLL_S"] == "5"
        assert env["STACK_LABEL"] == "overridden"
        assert env["AWS_ENDPOINT_URL"] == stack.aws_endpoint_url
        assert env["PUBLIC_BASE_URL"] == stack.api_url
        assert stack.simulator is not None and env["KLING_API_BASE_URL"] == stack.simulator.url
        assert env["LOCAL_ALLOW_HTTP_LOOPBACK"] == "1"

    def test_api_keys_are_enforced_where_the_template_requires_them(self, stack: LocalStack) -> None:
        missing = httpx.get(f"{stack.api_url}/v1/items/abc")
        unknown = httpx.get(f"{stack.api_url}/v1/items/abc", headers={"x-api-key": "nope"})
        public = httpx.get(f"{stack.api_url}/openapi.json")
        callback = httpx.post(f"{stack.api_url}/v1/callbacks/kling/gen_1?token=t", json={"task_id": "t1"})

        assert (missing.status_code, missing.json()) == (403, {"message": "Forbidden"})
        assert (unknown.status_code, unknown.json()) == (403, {"message": "Forbidden"})
        assert public.status_code == 200
        assert public.json()["event"]["requestContext"]["identity"]["apiKeyId"] is None
        assert callback.status_code == 201
        event = callback.json()["event"]
        assert event["pathParameters"] == {"provider": "kling", "id": "gen_1"}
        assert event["queryStringParameters"] == {"token": "t"}
        assert json.loads(event["body"]) == {"task_id": "t1"}

    def test_binary_bodies_are_base64_both_ways(self, stack: LocalStack) -> None:
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
        sent = httpx.post(
            f"{stack.api_url}/v1/items", headers={**KEY, "content-type": "image/png"}, content=png
        )
        text = httpx.post(
            f"{stack.api_url}/v1/items", headers={**KEY, "content-type": "text/plain"}, content="héllo"
        )
        got = httpx.get(f"{stack.api_url}/v1/items/x?binary=1", headers=KEY)

        assert sent.status_code == 201
        assert sent.json()["event"]["isBase64Encoded"] is True
        assert base64.b64decode(sent.json()["event"]["body"]) == png
        assert text.json()["event"]["isBase64Encoded"] is False and text.json()["event"]["body"] == "héllo"
        assert got.content == b"\x89PNG\r\n\x1a\n" and got.headers["content-type"] == "image/png"

    def test_errors_look_like_api_gateway(self, stack: LocalStack) -> None:
        too_big = httpx.post(f"{stack.api_url}/v1/items", headers=KEY, content=b"x" * (10 * 1024 * 1024 + 1))
        boom = httpx.get(f"{stack.api_url}/v1/boom", headers=KEY)
        unknown = httpx.get(f"{stack.api_url}/v2/nothing", headers=KEY)

        assert too_big.status_code == 413  # the template's GatewayResponses body
        assert too_big.json() == {"error": {"code": "payload_too_large", "message": "Request Too Long"}}
        assert (boom.status_code, boom.json()) == (502, {"message": "Internal server error"})
        assert unknown.status_code == 404

    def test_sqs_partial_batch_failure_redelivers_only_the_failed_record_then_dead_letters_it(
        self, stack: LocalStack
    ) -> None:
        # Given: SubmitQueue (maxReceiveCount 2, visibility capped to 1 s) feeding the fake worker
        sqs = stack.client("sqs")
        queues = stack.resources.queues  # type: ignore[union-attr]
        deliveries = fake("worker").DELIVERIES
        # When: one good and one failing message arrive
        sqs.send_message(QueueUrl=queues["SubmitQueue"].url, MessageBody="ok-1")
        sqs.send_message(
            QueueUrl=queues["SubmitQueue"].url,
            MessageBody="fail-1",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )

        # Then: the failing one is tried maxReceiveCount times and lands in the DLQ; the good one once
        dead = wait_for(
            lambda: sqs.receive_message(QueueUrl=queues["SubmitDLQ"].url, WaitTimeSeconds=1).get("Messages")
        )
        assert [m["Body"] for m in dead] == ["fail-1"]
        bodies = [record["body"] for record in deliveries]
        assert bodies.count("ok-1") == 1 and bodies.count("fail-1") == 2
        failed = [record for record in deliveries if record["body"] == "fail-1"]
        assert [r["attributes"]["ApproximateReceiveCount"] for r in failed] == ["1", "2"]
        record = failed[0]
        assert record["eventSource"] == "aws:sqs" and record["awsRegion"] == "us-east-1"
        assert record["eventSourceARN"] == queues["SubmitQueue"].arn
        assert record["messageAttributes"]["kind"]["stringValue"] == "test"
        assert record["messageAttributes"]["kind"]["dataType"] == "String"

    def test_state_machine_runs_with_its_lambda_task_in_process(self, stack: LocalStack) -> None:
        sfn = stack.client("stepfunctions")
        arn = stack.resources.state_machines["FallbackStateMachine"]  # type: ignore[union-attr]

        execution = sfn.start_execution(
            stateMachineArn=arn, name="gen_sfn", input=json.dumps({"id": "gen_sfn", "wait_s": 1})
        )["executionArn"]

        status = wait_for(lambda: sfn.describe_execution(executionArn=execution)["status"] != "RUNNING")
        assert status
        described = sfn.describe_execution(executionArn=execution)
        assert described["status"] == "SUCCEEDED"
        assert json.loads(described["output"])["poll"] == {"done": True, "calls": 2}
        history = [e["type"] for e in sfn.get_execution_history(executionArn=execution)["events"]]
        # Wait → Poll → Choice → Wait → Poll → Choice → Finished
        assert sum(t.endswith("StateEntered") for t in history) == 7
        assert history.count("TaskSucceeded") == 2
        assert fake("poller").CALLS["gen_sfn"] == 2

    def test_events_on_the_bus_reach_their_functions(self, stack: LocalStack) -> None:
        events = stack.client("events")
        received = fake("events").EVENTS

        def put(detail_type: str, detail: dict[str, Any]) -> None:
            entry = {
                "Source": "kling.client",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": stack.event_bus_name,
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

        before = len(received)
        put("Something Else", {"n": 0})
        put("Generation Requested", {"n": 1})  # AWS::Events::Rule with a function target
        put("Generation Nudged", {"n": 2})  # the function's own EventBridgeRule event

        wait_for(lambda: len(received) >= before + 2)
        time.sleep(0.5)
        assert sorted(e["detail"]["n"] for e in received[before:]) == [1, 2]
        requested = next(e for e in received if e["detail"]["n"] == 1)
        assert requested["detail-type"] == "Generation Requested"
        assert requested["source"] == "kling.client" and requested["account"] == "123456789012"
        assert requested["region"] == "us-east-1" and requested["id"]

    def test_a_failing_event_is_retried_then_recorded_at_the_on_failure_destination(
        self, stack: LocalStack
    ) -> None:
        events, sqs = stack.client("events"), stack.client("sqs")
        dlq = stack.resources.queues["EventTriggerDLQ"].url  # type: ignore[union-attr]
        received = fake("events").EVENTS
        entry = {
            "Source": "kling.client",
            "DetailType": "Generation Requested",
            "Detail": json.dumps({"fail": True, "n": 99}),
            "EventBusName": stack.event_bus_name,
        }

        events.put_events(Entries=[entry])

        records = wait_for(lambda: sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages"))
        record = json.loads(records[0]["Body"])
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 2  # MaximumRetryAttempts: 1
        assert record["requestPayload"]["detail"] == {"fail": True, "n": 99}
        assert record["responsePayload"]["errorType"] == "ValueError"
        assert sum(1 for e in received if e["detail"].get("n") == 99) == 2

    def test_resources_follow_the_template(self, stack: LocalStack) -> None:
        dynamodb, sqs, s3 = stack.client("dynamodb"), stack.client("sqs"), stack.client("s3")
        secrets, lam = stack.client("secretsmanager"), stack.client("lambda")

        table = dynamodb.describe_table(TableName="kling-pipeline-local-GenerationsTable")["Table"]
        assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["ByTenant"]
        ttl = dynamodb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires_at"
        submit = sqs.get_queue_attributes(
            QueueUrl=stack.resources.queues["SubmitQueue"].url, AttributeNames=["All"]
        )  # type: ignore[union-attr]
        assert json.loads(submit["Attributes"]["RedrivePolicy"])["maxReceiveCount"] == 2
        assert submit["Attributes"]["VisibilityTimeout"] == "1"  # capped from 60
        notification = s3.get_bucket_notification_configuration(Bucket=stack.bucket)
        assert notification["QueueConfigurations"][0]["QueueArn"].endswith(
            ":kling-pipeline-local-UploadsQueue"
        )
        signing = json.loads(
            secrets.get_secret_value(SecretId="kling-pipeline-local-SigningSecret")["SecretString"]
        )
        assert signing["WEBHOOK_SIGNING_SECRET"] == "fixed" and len(signing["CALLBACK_SIGNING_SECRET"]) == 40
        provider = json.loads(
            secrets.get_secret_value(SecretId=os.environ["PROVIDER_SECRET_NAME"])["SecretString"]
        )
        assert provider["KLING_ACCESS_KEY"] == "sim-access-key"
        names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
        assert "kling-pipeline-local-PollerFunction" in names
        assert "kling-pipeline-local-ExtraFunction" not in names  # its Condition is false

    def test_s3_uploads_notify_the_uploads_queue(self, stack: LocalStack) -> None:
        s3, sqs = stack.client("s3"), stack.client("sqs")
        queue = stack.resources.queues["UploadsQueue"].url  # type: ignore[union-attr]

        s3.put_object(Bucket=stack.bucket, Key="uploads/job.json", Body=b"{}")
        s3.put_object(Bucket=stack.bucket, Key="elsewhere/job.json", Body=b"{}")

        def keys() -> list[str]:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            bodies = [json.loads(m["Body"]) for m in messages]
            # moto percent-encodes "/" in keys (S3 itself does not); handlers unquote_plus either way
            return [unquote_plus(r["s3"]["object"]["key"]) for b in bodies for r in b.get("Records", [])]

        assert wait_for(keys) == ["uploads/job.json"]

    def test_state_file(self, stack: LocalStack, tmp_path: Path) -> None:
        path = stack.write_state_file(tmp_path / "stack.json")

        state = json.loads(path.read_text())
        assert state["api_url"] == stack.api_url and state["aws_endpoint_url"] == stack.aws_endpoint_url
        assert state["region"] == "us-east-1" and state["bucket"] == stack.bucket
        assert state["event_bus_name"] == stack.event_bus_name
        assert state["api_keys"] == {"local-dev-key": "demo"}


def test_stop_restores_the_process() -> None:
    before = dict(os.environ)

    with LocalStack(
        template_path=MINI_TEMPLATE, simulator=False, env_overrides={"LOCAL_API_KEYS": "k=t"}
    ) as stack:
        assert stack.api_keys == {"k": "t"}
        with pytest.raises(RuntimeError):
            LocalStack(template_path=MINI_TEMPLATE, simulator=False).start()

    assert dict(os.environ) == before


def test_cli_local_runs_until_sigterm(tmp_path: Path) -> None:
    state_file = tmp_path / "stack.json"
    command = [sys.executable, "-m", "kling_local.cli", "local", "--port", "0", "--aws-port", "0"]
    command += ["--no-simulator", "--state-file", str(state_file), "--template", str(MINI_TEMPLATE)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(state_file.exists, timeout=30)
        state = json.loads(state_file.read_text())
        response = httpx.get(f"{state['api_url']}/v1/items/1", headers=KEY)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["api_url"] == state["api_url"]
    assert not state_file.exists()


REAL_TEMPLATE = REPO / "template.yaml"


def test_real_template_creates_everything_it_declares() -> None:
    template = Template.load(REAL_TEMPLATE)

    def declared(*types: str) -> set[str]:
        return {r.logical_id for r in template.resources.values() if r.type in types}

    with LocalStack(template_path=REAL_TEMPLATE, simulator=False) as stack:
        resources = stack.resources
        assert resources is not None
        assert set(resources.tables) == declared("AWS::DynamoDB::Table")
        assert declared("AWS::SQS::Queue") <= set(resources.queues)
        assert set(resources.buckets) == declared("AWS::S3::Bucket")
        assert set(resources.state_machines) == declared(
            "AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"
        )
        assert set(resources.functions) == declared("AWS::Serverless::Function")
        dynamodb, sqs, sfn = stack.client("dynamodb"), stack.client("sqs"), stack.client("stepfunctions")
        assert set(dynamodb.list_tables()["TableNames"]) == set(resources.tables.values())
        urls = set(sqs.list_queues().get("QueueUrls", []))
        assert {q.url for q in resources.queues.values()} == urls
        machines = {m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        assert machines == set(resources.state_machines.values())
        assert stack.bucket in {b["Name"] for b in stack.client("s3").list_buckets()["Buckets"]}
        assert stack.event_bus_name != "default" or not declared("AWS::Events::EventBus")
