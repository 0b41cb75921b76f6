"""EventBridge in (services.event_requests, functions/event_trigger) against moto, and the event schemas.

`create_generation` is replaced by a stand-in that validates and writes the generation but submits
nothing (the provider path is covered by tests/integration/pipeline/test_triggers.py). Events our code
publishes are read from a capture rule → SQS queue on the mocked bus.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kling_local.stack.template import Template
from kling_pipeline import messaging
from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.generation import Generation, GenerationError, Output, utcnow
from kling_pipeline.domain.money import ActualCost, EstimatedCost
from kling_pipeline.domain.request import GenerationRequest
from kling_pipeline.domain.status import Status
from kling_pipeline.ids import new_generation_id
from kling_pipeline.services import event_requests
from kling_pipeline.services.lifecycle import event_detail
from kling_pipeline.store.generations import get_generation_store
from tests.unit.conftest import FakeCreate

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "events"
REGION = "us-east-1"
BUS = "kling-pipeline-bus"
Event = Callable[[str], dict[str, Any]]


@cache
def template() -> Template:
    return Template.load(ROOT / "template.yaml")


class Bus:
    def __init__(self, create: FakeCreate, capture_url: str) -> None:
        self.create = create
        self.capture_url = capture_url
        self.sqs = boto3.client("sqs", region_name=REGION)

    def published(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.capture_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    def generations(self, tenant: str) -> list[Generation]:
        return get_generation_store().list_for_tenant(tenant, status=None, limit=100, cursor=None).items


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "GENERATIONS_TABLE": "generations",
        "EVENT_BUS_NAME": BUS,
        "UPLOAD_TENANT_ID": "events-default",
        "EVENT_SOURCES": "com.example.campaigns,com.example.defaults",
        "EVENT_SOURCE_TENANTS": "com.example.campaigns=tenant-a",
        "DEFAULT_QUALITY": "1080p",
        "DEFAULT_DURATION_S": "8",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        props = template().resources["GenerationsTable"].properties
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName="generations",
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            BillingMode="PAY_PER_REQUEST",
        )
        events = boto3.client("events", region_name=REGION)
        events.create_event_bus(Name=BUS)
        sqs = boto3.client("sqs", region_name=REGION)
        capture_url = sqs.create_queue(QueueName="capture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="capture", EventBusName=BUS, EventPattern=json.dumps({"source": ["kling-pipeline"]})
        )
        events.put_targets(Rule="capture", EventBusName=BUS, Targets=[{"Id": "capture", "Arn": capture_arn}])
        reset_caches()
        fake = FakeCreate()
        monkeypatch.setattr(event_requests, "create_generation", fake)
        yield Bus(fake, capture_url)
    reset_caches()


@pytest.fixture
def invoke(lambda_context: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from functions.event_trigger.app import lambda_handler

    return lambda event: dict(lambda_handler(event, lambda_context))


# ---- Generation Requested -------------------------------------------------------------------------------


def test_a_generation_requested_event_creates_one_generation_for_its_tenant(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event
) -> None:
    # Given the sample event
    requested = event("event_trigger/generation_requested")

    # When it is delivered
    answer = invoke(requested)

    # Then one generation exists for the detail's tenant, sourced from the event
    [generation] = bus.generations("tenant-a")
    assert answer == {
        "event_id": requested["id"],
        "generation_id": generation.id,
        "rejected": False,
        "duplicate": False,
    }
    assert generation.source == f"eventbridge:{requested['id']}"
    assert generation.request.prompt == requested["detail"]["prompt"]
    assert generation.metadata == {"campaign": "spring"}
    assert "tenant_id" not in bus.create.calls[0]["body"]
    assert bus.published() == []


def test_a_redelivered_event_never_creates_a_second_generation(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event
) -> None:
    requested = event("event_trigger/generation_requested")

    first = invoke(requested)
    second = invoke(requested)
    other = invoke({**requested, "id": "another-event-id"})

    assert second == {**first, "duplicate": True}
    assert other["generation_id"] not in (None, first["generation_id"])
    assert len(bus.create.calls) == 2
    assert len(bus.generations("tenant-a")) == 2


def test_stack_defaults_and_the_default_tenant_fill_what_the_event_leaves_out(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event
) -> None:
    requested = event("event_trigger/generation_requested")
    requested["source"] = "com.example.defaults"  # allowed, mapped to no tenant of its own
    requested["detail"] = {"mode": "text-to-video", "prompt": "A red kite over dunes"}

    invoke(requested)

    [generation] = bus.generations("events-default")
    assert (generation.request.quality.value, generation.request.duration) == ("1080p", 8)


def test_an_invalid_request_is_answered_with_a_rejected_event_once(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event
) -> None:
    # Given a request that breaks the duration rule
    requested = event("event_trigger/invalid_request")

    # When it is delivered, and redelivered
    answer = invoke(requested)
    again = invoke(requested)

    # Then nothing is created and the sender gets one "Generation Request Rejected" with the details
    assert answer["rejected"] and answer["generation_id"] is None
    assert again["duplicate"]
    assert bus.create.calls == []
    [rejected] = bus.published()
    assert rejected["detail-type"] == "Generation Request Rejected"
    assert rejected["source"] == "kling-pipeline"
    detail = rejected["detail"]
    assert detail["request_event_id"] == requested["id"]
    assert detail["request_source"] == "com.example.campaigns"
    assert detail["tenant_id"] == "tenant-a"
    assert detail["metadata"] == {"campaign": "spring"}
    assert detail["error"]["code"] == "validation_error"
    assert {d["field"] for d in detail["error"]["details"]} == {"prompt", "duration"}


def test_an_event_cannot_choose_another_tenant_than_its_sources(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event
) -> None:
    # Given an allowed source (mapped to tenant-a) whose event names tenant-b
    requested = event("event_trigger/generation_requested")
    requested["detail"]["tenant_id"] = "tenant-b"

    answer = invoke(requested)

    # Then nothing is spent for tenant-b (or anyone); the sender is told why
    assert answer["rejected"] and answer["generation_id"] is None
    assert bus.create.calls == []
    [rejected] = bus.published()
    assert rejected["detail"]["error"]["details"] == [
        {"field": "tenant_id", "issue": "events from com.example.campaigns may only request for tenant-a"}
    ]


def test_an_event_from_a_source_not_allowed_is_dropped(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event
) -> None:
    requested = event("event_trigger/generation_requested")
    requested["source"] = "someone.with.put-events"

    answer = invoke(requested)

    assert answer["rejected"] and answer["generation_id"] is None
    assert bus.create.calls == []
    assert bus.generations("tenant-a") == [] and bus.generations("events-default") == []


def test_the_template_filters_the_rule_on_the_allowed_sources_and_can_lock_the_bus() -> None:
    resources = template().resources
    function = resources["EventTriggerFunction"].properties
    pattern = function["Events"]["GenerationRequested"]["Properties"]["Pattern"]
    assert pattern["source"] == {"Ref": "EventSources"}
    variables = function["Environment"]["Variables"]
    assert variables["EVENT_SOURCES"] == {"Fn::Join": [",", {"Ref": "EventSources"}]}
    assert variables["EVENT_SOURCE_TENANTS"] == {"Ref": "EventSourceTenants"}
    policy = resources["EventBusSenderPolicy"]
    assert policy.type == "AWS::Events::EventBusPolicy"
    statement = policy.properties["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "events:PutEvents"
    assert statement["Condition"]["StringEquals"]["events:source"] == {"Ref": "EventSources"}


@pytest.mark.parametrize(
    ("detail", "field"),
    [
        pytest.param("not an object", "detail", id="detail-not-object"),
        pytest.param(
            {"tenant_id": "a/b", "mode": "text-to-video", "prompt": "x"}, "tenant_id", id="bad-tenant"
        ),
        pytest.param({"mode": "text-to-video", "prompt": "x", "colour": "red"}, "colour", id="unknown-field"),
    ],
)
def test_malformed_details_are_rejected_not_retried(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event, detail: Any, field: str
) -> None:
    requested = {**event("event_trigger/generation_requested"), "detail": detail}

    assert invoke(requested)["rejected"]

    [rejected] = bus.published()
    assert field in {d["field"] for d in rejected["detail"]["error"]["details"]}


def test_a_rejection_that_could_not_be_published_is_published_on_the_retry(
    bus: Bus,
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    event: Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given EventBridge refusing the first rejection event
    requested = event("event_trigger/invalid_request")
    real_publish = messaging.publish
    attempts: list[str] = []

    def flaky_publish(detail_type: str, detail: dict[str, Any]) -> None:
        attempts.append(detail_type)
        if len(attempts) == 1:
            raise messaging.EventsNotDelivered("InternalFailure")
        real_publish(detail_type, detail)

    monkeypatch.setattr(messaging, "publish", flaky_publish)

    # When the invocation fails and Lambda retries it
    with pytest.raises(messaging.EventsNotDelivered):
        invoke(requested)
    answer = invoke(requested)

    # Then the sender still learns about the rejection, exactly once
    assert answer["rejected"] and not answer["duplicate"]
    assert [e["detail-type"] for e in bus.published()] == ["Generation Request Rejected"]


# ---- schemas (docs/events) ------------------------------------------------------------------------------


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def validate(instance: Any, name: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema(name))
    jsonschema.Draft202012Validator(schema(name), format_checker=jsonschema.FormatChecker()).validate(
        instance
    )


def test_the_requested_schema_lists_exactly_the_api_body_and_tenant_id(event: Event) -> None:
    assert set(schema("generation-requested")["properties"]) == {*GenerationRequest.model_fields, "tenant_id"}
    validate(event("event_trigger/generation_requested")["detail"], "generation-requested")


def test_published_details_match_their_schemas() -> None:
    now = utcnow()
    request = GenerationRequest.model_validate({"mode": "text-to-video", "prompt": "p"})
    base = Generation(
        id=new_generation_id(),
        tenant_id="t",
        status=Status.SUCCEEDED,
        mode=request.mode,
        model=request.model,
        provider="evolink",
        provider_task_id="task-1",
        created_at=now,
        updated_at=now,
        request=request,
        estimated_cost=EstimatedCost(usd=Decimal("0.375"), provider="evolink"),
        actual_cost=ActualCost(usd=Decimal("0.375"), units=Decimal("27"), unit="evolink_credits"),
        outputs=[
            Output(
                s3_uri="s3://b/outputs/t/g/video-1.mp4",
                bucket="b",
                key="outputs/t/g/video-1.mp4",
                url="https://presigned.example/x",
                bytes=1234,
                sha256="a" * 64,
                duration_s=5.0,
                width=1280,
                height=720,
            )
        ],
        metadata={"campaign": "spring"},
    )
    validate(event_detail(base), "generation-succeeded")
    failed = base.model_copy(
        update={"status": Status.FAILED, "outputs": [], "error": GenerationError(code="timeout", message="m")}
    )
    validate(event_detail(failed), "generation-failed")
    canceled = base.model_copy(
        update={
            "status": Status.CANCELED,
            "outputs": [],
            "error": GenerationError(code="canceled", message="canceled by the caller"),
            "actual_cost": ActualCost(usd=Decimal(0), basis="not_billed"),
        }
    )
    validate(event_detail(canceled), "generation-canceled")
    error = {"code": "validation_error", "message": "m", "details": [{"field": "duration", "issue": "i"}]}
    validate(
        event_requests.rejection_detail({"id": "e", "source": "s", "detail": {}}, "t", error),
        "generation-request-rejected",
    )


def test_the_example_rule_routes_generation_succeeded_only() -> None:
    from moto.events.models import EventPattern

    rule = json.loads((SCHEMAS / "example-rule.json").read_text(encoding="utf-8"))
    pattern = EventPattern.load(
        json.dumps(rule["Resources"]["GenerationSucceededRule"]["Properties"]["EventPattern"])
    )

    def matches(detail_type: str, source: str = messaging.EVENT_SOURCE) -> bool:
        return bool(pattern.matches_event({"source": source, "detail-type": detail_type, "detail": {}}))

    assert matches("Generation Succeeded")
    assert not matches("Generation Failed")
    assert not matches("Generation Request Rejected")
    assert not matches("Generation Succeeded", source="someone.else")


def test_events_and_get_say_where_a_generation_came_from(
    bus: Bus, invoke: Callable[[dict[str, Any]], dict[str, Any]], event: Event
) -> None:
    requested = event("event_trigger/generation_requested")
    invoke(requested)
    [generation] = bus.generations("tenant-a")

    assert event_detail(generation)["source"] == f"eventbridge:{requested['id']}"
    assert generation.public()["source"] == f"eventbridge:{requested['id']}"
    for name in ("generation-succeeded", "generation-failed"):
        assert "source" in schema(name)["required"]
