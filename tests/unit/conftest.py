"""A moto-backed account with the stack's data resources, for unit tests of the services."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws

from kling_local.stack.template import Template
from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.generation import Generation, utcnow
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.domain.status import Status
from kling_pipeline.ids import new_generation_id
from kling_pipeline.services.generations import validated_request
from kling_pipeline.store.generations import get_generation_store
from kling_pipeline.store.slots import get_slot_store

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "http://127.0.0.1:9"


@pytest.fixture
def pipeline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """GenerationsTable (keys from template.yaml), the bucket, the bus, the submit queue, a state machine;
    the Kling provider configured at an address respx intercepts."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "GENERATIONS_TABLE": "generations",
        "BUCKET_NAME": "media",
        "EVENT_BUS_NAME": "bus",
        "KLING_API_BASE_URL": PROVIDER,
        "KLING_ACCESS_KEY": "ak",
        "KLING_SECRET_KEY": "sk-for-tests-only-long-enough-for-hs256",
        "LOCAL_ALLOW_HTTP_LOOPBACK": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    props = Template.load(ROOT / "template.yaml").resources["GenerationsTable"].properties
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="generations",
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("s3").create_bucket(Bucket="media")
        boto3.client("events").create_event_bus(Name="bus")
        queue = boto3.client("sqs").create_queue(QueueName="submit")["QueueUrl"]
        role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        machine = boto3.client("stepfunctions").create_state_machine(
            name="fallback",
            definition=json.dumps({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}),
            roleArn=role,
        )["stateMachineArn"]
        monkeypatch.setenv("SUBMIT_QUEUE_URL", queue)
        monkeypatch.setenv("STATE_MACHINE_ARN", machine)
        reset_caches()
        yield
        reset_caches()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """AWS operations made through botocore while the test runs."""
    counted: Counter[str] = Counter()
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        counted[operation] += 1
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    return counted


def stored_generation(generation_id: str = "gen_test", *, status: Status = Status.PROCESSING) -> Generation:
    """A Kling text-to-video generation as the pipeline stores it."""
    now = utcnow()
    return Generation(
        id=generation_id,
        tenant_id="tenant-a",
        status=status,
        mode="text-to-video",
        model="kling-o3",
        provider="kling",
        provider_task_id="tk_1",
        created_at=now,
        updated_at=now,
        request=parse_generation_request({"mode": "text-to-video", "prompt": "x"}),
        deadline_at=now + timedelta(hours=1),
    )


def slot_holder(index: int, account: str = "default") -> str | None:
    """Who holds slot `index` of a Kling account now (None: free)."""
    store = get_slot_store()
    return store.view("kling", account, 5).live(store.now()).get(index)


def held_by(generation_id: str) -> bool:
    store = get_slot_store()
    return store.view("kling", "default", 5).holds(generation_id, store.now()) is not None


def take_slot(generation_id: str) -> None:
    store = get_slot_store()
    assert store.acquire(store.view("kling", "default", 5), generation_id, lease_s=600) is not None


class FakeCreate:
    """`create_generation` without the provider: validate (incl. media headers), write, remember."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_after_write = 0

    def __call__(
        self,
        body: Mapping[str, Any],
        *,
        tenant_id: str,
        source: str = "api",
    ) -> Generation:
        request = validated_request(body, tenant_id=tenant_id)
        now = utcnow()
        generation = Generation(
            id=new_generation_id(),
            tenant_id=tenant_id,
            status=Status.QUEUED,
            mode=request.mode,
            model=request.model,
            created_at=now,
            updated_at=now,
            request=request,
            metadata=request.metadata,
            source=source,
        )
        get_generation_store().create(generation)
        self.calls.append({"body": dict(body), "tenant_id": tenant_id, "source": source, "id": generation.id})
        if self.fail_after_write:
            self.fail_after_write -= 1
            raise RuntimeError("the safety-net send failed after the generation was written")
        return generation
