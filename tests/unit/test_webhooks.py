"""End-user webhooks without a network: moto for DynamoDB/SQS/S3, respx for the receiver, and DNS answers
chosen per test (netguard resolves every webhook host at send time).

Signatures are checked with `standardwebhooks`, the scheme's reference library, never with our own code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import respx
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from moto import mock_aws
from pydantic import BaseModel, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from kling_local.stack.template import Template
from kling_pipeline import messaging, netguard
from kling_pipeline.caches import reset_caches
from kling_pipeline.config import Settings, reset_settings
from kling_pipeline.domain.generation import Generation, Output, utcnow
from kling_pipeline.domain.money import ActualCost
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.domain.status import Status
from kling_pipeline.observability import metrics
from kling_pipeline.services import lifecycle, webhooks
from kling_pipeline.services.webhook_signing import tenant_secret
from kling_pipeline.store.deliveries import get_delivery_store
from kling_pipeline.store.generations import get_generation_store

ROOT = Path(__file__).resolve().parents[2]
MASTER = "master-secret-for-tests-0123456789abcdef"
HOOK = "https://hooks.example.com/video"
SCHEDULE = (0, 5, 300, 1800)
PUBLIC_IP, PRIVATE_IP = "93.184.215.14", "10.0.0.1"
DNS = {"hooks.example.com": PUBLIC_IP, "moved.example.com": PUBLIC_IP, "rebound.example.com": PRIVATE_IP}


@dataclass
class Sent:
    queue_url: str | None
    body: dict[str, Any]
    delay_s: int


@dataclass
class Env:
    webhook_queue: str
    dlq: str
    sent: list[Sent]

    def queued(self) -> list[Sent]:
        return [item for item in self.sent if item.queue_url == self.webhook_queue]

    def dead_lettered(self) -> list[Sent]:
        return [item for item in self.sent if item.queue_url == self.dlq]


def _table_definition() -> dict[str, Any]:
    """GenerationsTable's keys and indexes exactly as template.yaml declares them."""
    props = Template.load(ROOT / "template.yaml").resources["GenerationsTable"].properties
    return {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "GlobalSecondaryIndexes": props.get("GlobalSecondaryIndexes", []),
        "BillingMode": "PAY_PER_REQUEST",
    }


def _clear_caches() -> None:
    reset_caches()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "LOCAL_ALLOW_HTTP_LOOPBACK",
        "LOCAL_ALLOW_PRIVATE_WEBHOOKS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("GENERATIONS_TABLE", "generations")
    monkeypatch.setenv("BUCKET_NAME", "media")
    monkeypatch.setenv("EVENT_BUS_NAME", "bus")
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", MASTER)
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE_S", ",".join(map(str, SCHEDULE)))
    monkeypatch.setattr(netguard, "_resolve", lambda host, port: [ip_address(DNS.get(host, PUBLIC_IP))])
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="generations", **_table_definition()
        )
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="media")
        boto3.client("events", region_name="us-east-1").create_event_bus(Name="bus")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="webhooks")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="webhooks-dlq")["QueueUrl"]
        monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue)
        monkeypatch.setenv("WEBHOOK_DLQ_URL", dlq)
        _clear_caches()
        sent: list[Sent] = []
        real_send = messaging.send

        def spy(queue_url: str | None, message: BaseModel, *, delay_s: int = 0) -> None:
            real_send(queue_url, message, delay_s=delay_s)
            sent.append(Sent(queue_url, json.loads(message.model_dump_json()), delay_s))

        monkeypatch.setattr(messaging, "send", spy)
        metrics.clear_metrics()
        yield Env(queue, dlq, sent)
        metrics.clear_metrics()
        _clear_caches()


def make_generation(
    *, status: Status = Status.SUCCEEDED, webhook_url: str | None = HOOK, tenant_id: str = "tenant-a"
) -> Generation:
    body: dict[str, Any] = {"mode": "text-to-video", "prompt": "A paper boat drifts down a rainy street"}
    if webhook_url:
        body["webhook_url"] = webhook_url
    request = parse_generation_request(body)
    now = utcnow()
    outputs = (
        [
            Output(
                s3_uri="s3://media/outputs/gen/video-1.mp4",
                bucket="media",
                key="outputs/gen/video-1.mp4",
                bytes=1234,
                sha256="ab" * 32,
                duration_s=5.0,
            )
        ]
        if status is Status.SUCCEEDED
        else []
    )
    generation = Generation(
        id=f"gen_{now.strftime('%H%M%S%f')}",
        tenant_id=tenant_id,
        status=status,
        mode=request.mode,
        model=request.model,
        provider="kling",
        provider_task_id="task-1",
        created_at=now - timedelta(minutes=2),
        updated_at=now,
        request=request,
        actual_cost=ActualCost(usd=Decimal("0.42"), units=Decimal("3"), unit="kling_units"),
        outputs=outputs,
    )
    get_generation_store().create(generation)
    return generation


def message_for(generation: Generation, **changes: Any) -> webhooks.DeliveryMessage:
    return webhooks.DeliveryMessage(generation_id=generation.id, occurred_at=generation.updated_at, **changes)


def due(sent: Sent) -> webhooks.DeliveryMessage:
    """The queued message as SQS hands it over once its time has come."""
    return webhooks.DeliveryMessage.model_validate({**sent.body, "not_before": None})


def attempts(generation: Generation) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in get_delivery_store().list_attempts(generation.id)]


def metric_names() -> set[str]:
    return set(metrics.metric_set)


# ---- signing ---------------------------------------------------------------------------------------------


def test_tenant_secrets_are_derived_from_the_master_and_distinct_per_tenant() -> None:
    secret_a, secret_b = tenant_secret(MASTER, "tenant-a"), tenant_secret(MASTER, "tenant-b")
    expected = hmac.new(MASTER.encode(), b"tenant-a", hashlib.sha256).digest()
    assert secret_a == "whsec_" + base64.b64encode(expected).decode()
    assert secret_a != secret_b
    assert tenant_secret("rotated-master", "tenant-a") != secret_a  # rotating the master rotates all


def test_delivery_is_signed_per_standard_webhooks(env: Env) -> None:
    # Given a succeeded generation with a webhook_url
    generation = make_generation()
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).respond(204)
        # When its first attempt runs
        webhooks.deliver(message_for(generation))
    # Then the reference library accepts the signature made with the tenant's secret
    request = route.calls.last.request
    payload = Webhook(webhooks.secret_for_tenant("tenant-a")).verify(request.content, dict(request.headers))
    assert request.headers["webhook-id"] == f"msg_{generation.id}_succeeded"
    assert request.headers["content-type"] == "application/json"
    assert payload["type"] == "generation.succeeded"
    assert payload["timestamp"] == generation.updated_at.isoformat().replace("+00:00", "Z")
    assert payload["data"]["created_at"].endswith("Z")
    assert payload["data"]["id"] == generation.id
    assert payload["data"]["status"] == "succeeded"
    assert payload["data"]["outputs"][0]["url"].startswith(
        "https://media.s3.amazonaws.com/outputs/gen/video-1.mp4"
    )
    # And another tenant's secret does not verify it
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.secret_for_tenant("tenant-b")).verify(request.content, dict(request.headers))
    assert env.queued() == [] and env.dead_lettered() == []
    assert "WebhookDelivered" in metric_names()


def test_failed_generations_send_generation_failed(env: Env) -> None:
    generation = make_generation(status=Status.FAILED)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).respond(200)
        webhooks.deliver(message_for(generation))
    payload = json.loads(route.calls.last.request.content)
    assert payload["type"] == "generation.failed"
    assert route.calls.last.request.headers["webhook-id"] == f"msg_{generation.id}_failed"


def test_every_attempt_of_a_webhook_id_carries_the_same_body(env: Env) -> None:
    # Found by the chaos run: the `announced` mark written after the outcome moved updated_at, so a
    # retry's body differed from the first attempt's under the same webhook-id.
    generation = make_generation()
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
        webhooks.deliver(message_for(generation))
        (second,) = env.queued()
        lifecycle.announce(get_generation_store().get(generation.id))  # marks it: updated_at moves
        assert get_generation_store().get(generation.id).updated_at != generation.updated_at
        webhooks.deliver(due(second))

    def comparable(call: Any) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(call.request.content)
        for output in body["data"]["outputs"]:
            output.pop("url")  # presigned afresh for each attempt, so it is valid when it arrives
        return body

    first, retry = (comparable(call) for call in route.calls)
    assert first == retry
    assert first["data"]["updated_at"] == first["timestamp"]


def test_a_canceled_tasks_late_cost_does_not_change_the_body_of_its_webhook(env: Env) -> None:
    # Found by the chaos run: a canceled task the provider finished anyway gets its cost recorded after the
    # outcome; a retry built from the record then carried another actual_cost under the same webhook-id.
    generation = make_generation(status=Status.CANCELED)
    webhooks.schedule_first_delivery(generation)
    (first_attempt,) = env.queued()
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
        webhooks.deliver(due(first_attempt))
        retry = env.queued()[-1]
        late_cost = ActualCost(usd=Decimal("0.42"), basis="reported")
        get_generation_store().update(
            generation.id, lambda g: g.model_copy(update={"actual_cost": late_cost})
        )
        webhooks.deliver(due(retry))
    first, second = (json.loads(call.request.content) for call in route.calls)
    assert first == second
    assert first["type"] == "generation.canceled"


# ---- retry schedule --------------------------------------------------------------------------------------


def test_a_5xx_is_retried_on_schedule_with_the_same_webhook_id(env: Env) -> None:
    generation = make_generation()
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(503)])
        # When attempt 1 fails, attempt 2 is queued after schedule[1] s (±10 % jitter)
        webhooks.deliver(message_for(generation))
        (second,) = env.queued()
        assert second.body["attempt"] == 2
        assert 5 * 0.9 <= second.delay_s <= 6
        # When attempt 2 fails too, attempt 3 is queued after schedule[2] = 300 s
        webhooks.deliver(due(second))
    third = env.queued()[-1]
    assert third.body["attempt"] == 3
    assert 270 <= third.delay_s <= 331
    ids = {call.request.headers["webhook-id"] for call in route.calls}
    assert ids == {f"msg_{generation.id}_succeeded"}
    assert [a["outcome"] for a in attempts(generation)] == ["failed", "failed"]
    assert "WebhookAttemptFailed" in metric_names()


def test_waits_past_the_sqs_delay_limit_travel_as_not_before(env: Env) -> None:
    generation = make_generation()
    # Given attempt 4 (30 min after attempt 3) received after SQS's 15-minute maximum delay
    not_before = utcnow() + timedelta(seconds=900)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(HOOK).respond(200)
        webhooks.deliver(message_for(generation, attempt=4, not_before=not_before))
    # Then nothing is sent yet; the message goes back on the queue, unchanged, for up to 900 s more
    assert not route.called
    (again,) = env.queued()
    assert again.body["attempt"] == 4 and again.body["not_before"] is not None
    assert 895 <= again.delay_s <= 901
    assert attempts(generation) == []


def test_long_retry_delays_are_capped_by_sqs_and_carried_in_the_message(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE_S", "0,7200")
    reset_settings()
    generation = make_generation()
    with respx.mock() as mock:
        mock.post(HOOK).respond(500)
        webhooks.deliver(message_for(generation))
    (following,) = env.queued()
    sqs = boto3.client("sqs", region_name="us-east-1")
    assert following.delay_s > 900  # what we asked for; messaging caps SendMessage's DelaySeconds at 900
    (record,) = attempts(generation)
    assert record["next_retry_at"] == following.body["not_before"]
    assert (
        sqs.get_queue_attributes(QueueUrl=env.webhook_queue, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessagesDelayed"
        ]
        == "1"
    )


def test_the_last_failure_goes_to_the_dlq(env: Env) -> None:
    generation = make_generation()
    with respx.mock() as mock:
        mock.post(HOOK).respond(500)
        webhooks.deliver(message_for(generation, attempt=len(SCHEDULE)))
    assert env.queued() == []
    (parked,) = env.dead_lettered()
    assert parked.body["generation_id"] == generation.id and parked.body["attempt"] == 1
    (record,) = attempts(generation)
    assert record["dead_lettered"] is True and record["next_retry_at"] is None
    assert {"WebhookAttemptFailed", "WebhookDeadLettered"} <= metric_names()
    sqs = boto3.client("sqs", region_name="us-east-1")
    body = json.loads(sqs.receive_message(QueueUrl=env.dlq)["Messages"][0]["Body"])
    assert body["generation_id"] == generation.id


def test_410_gone_stops_without_dead_lettering(env: Env) -> None:
    generation = make_generation()
    with respx.mock() as mock:
        mock.post(HOOK).respond(410)
        webhooks.deliver(message_for(generation))
    assert env.sent == []
    (record,) = attempts(generation)
    assert record["outcome"] == "gone" and record["status_code"] == 410 and record["next_retry_at"] is None


def test_redirects_are_failures_and_never_followed(env: Env) -> None:
    generation = make_generation()
    with respx.mock(assert_all_called=False) as mock:
        mock.post(HOOK).respond(302, headers={"location": "https://moved.example.com/hook"})
        target = mock.post("https://moved.example.com/hook").respond(200)
        webhooks.deliver(message_for(generation))
    assert not target.called
    (record,) = attempts(generation)
    assert record["outcome"] == "failed" and record["status_code"] == 302
    assert "redirect" in record["error"]
    assert [item.body["attempt"] for item in env.queued()] == [2]


def test_transport_errors_are_retried(env: Env) -> None:
    generation = make_generation()
    with respx.mock() as mock:
        mock.post(HOOK).mock(side_effect=httpx.ConnectTimeout("timed out"))
        webhooks.deliver(message_for(generation))
    (record,) = attempts(generation)
    assert record["outcome"] == "failed" and record["status_code"] is None
    assert record["error"] == "could not reach the receiver"
    assert len(env.queued()) == 1


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadTimeout("The read operation timed out"),
    ],
)
def test_transport_errors_read_the_same_so_the_log_is_no_port_scanner(env: Env, error: Exception) -> None:
    # A tenant reads its delivery log; "refused" vs "timed out" vs "disconnected" would map a network's ports
    generation = make_generation()
    with respx.mock() as mock:
        mock.post(HOOK).mock(side_effect=error)
        webhooks.deliver(message_for(generation))
    (record,) = attempts(generation)
    assert record["error"] == "could not reach the receiver"


def test_a_url_that_resolves_to_a_private_address_is_refused_and_not_retried(env: Env) -> None:
    # Given a public-looking host whose DNS now answers with 10.0.0.1 (rebinding after submit)
    generation = make_generation(webhook_url="https://rebound.example.com/hook")
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post("https://rebound.example.com/hook").respond(200)
        webhooks.deliver(message_for(generation))
    assert not route.called
    assert env.sent == []
    (record,) = attempts(generation)
    assert record["outcome"] == "rejected" and record["error"].startswith("unsafe_url")


def test_the_local_flag_admits_private_receivers(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", "1")
    reset_settings()
    generation = make_generation(webhook_url="https://rebound.example.com/hook")
    with respx.mock() as mock:
        route = mock.post("https://rebound.example.com/hook").respond(200)
        webhooks.deliver(message_for(generation))
    assert route.called


def test_an_attempt_is_not_started_without_enough_lambda_time(env: Env) -> None:
    generation = make_generation()
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(HOOK).respond(200)
        webhooks.deliver(message_for(generation), time_left_ms=5_000)
    assert not route.called
    assert [(item.body["attempt"], item.delay_s) for item in env.queued()] == [(1, 0)]


# ---- record keeping --------------------------------------------------------------------------------------


def test_attempts_are_recorded_newest_first(env: Env) -> None:
    generation = make_generation(webhook_url=HOOK + "?token=tenant-own-secret")
    with respx.mock() as mock:
        mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
        webhooks.deliver(message_for(generation))
        webhooks.deliver(due(env.queued()[0]))
    newest, oldest = attempts(generation)
    assert (newest["attempt"], newest["outcome"], newest["status_code"]) == (2, "delivered", 200)
    assert (oldest["attempt"], oldest["outcome"], oldest["status_code"]) == (1, "failed", 500)
    assert oldest["next_retry_at"] is not None and newest["next_retry_at"] is None
    assert oldest["host"] == "hooks.example.com" and oldest["url"] == HOOK + "?token=tenant-own-secret"
    assert oldest["webhook_id"] == newest["webhook_id"] == f"msg_{generation.id}_succeeded"
    assert oldest["duration_ms"] >= 0 and oldest["event_type"] == "generation.succeeded"


# ---- scheduling from the terminal event ------------------------------------------------------------------


def test_the_terminal_event_queues_the_first_delivery_once(env: Env) -> None:
    generation = make_generation(status=Status.QUEUED)
    done = lifecycle.succeed(generation.id, outputs=[], actual_cost=ActualCost(usd=Decimal(0)))
    assert done is not None
    (first,) = env.queued()
    assert first.body == {
        "generation_id": generation.id,
        "sequence": 1,
        "attempt": 1,
        "occurred_at": done.updated_at.isoformat().replace("+00:00", "Z"),
        "not_before": None,
        "detail": json.loads(json.dumps(lifecycle.event_detail(done))),
    }
    # An announce repeated (the "announced" mark was lost) queues the same first delivery again: the
    # earlier announce may have died between its marker and the queue (found by the chaos run)
    webhooks.schedule_first_delivery(done)
    again = env.queued()[-1]
    assert len(env.queued()) == 2 and again.body == first.body


def test_an_announce_that_died_after_its_marker_still_gets_its_webhook_queued(env: Env) -> None:
    # Found by the chaos run: a crash right after the marker's PutItem (or that PutItem applied with its
    # answer dropped, then refused on retry) left a marker without a queued message, for ever.
    generation = make_generation()
    get_delivery_store().open_first_sequence(generation.id, generation.updated_at)  # ... and died here
    assert env.queued() == []
    lifecycle.announce(generation)  # whoever looks next announces again
    (first,) = env.queued()
    assert first.body["generation_id"] == generation.id and first.body["sequence"] == 1


def test_no_webhook_url_no_delivery(env: Env) -> None:
    generation = make_generation(status=Status.QUEUED, webhook_url=None)
    lifecycle.fail(generation.id, "content_policy", "refused")
    assert env.queued() == []


def test_a_queue_outage_does_not_lose_the_first_delivery(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    generation = make_generation()
    spy = messaging.send

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("SQS is down")

    monkeypatch.setattr(messaging, "send", broken)
    with pytest.raises(RuntimeError):
        webhooks.schedule_first_delivery(generation)
    monkeypatch.setattr(messaging, "send", spy)
    webhooks.schedule_first_delivery(generation)  # the retried announce
    assert len(env.queued()) == 1


# ---- settings --------------------------------------------------------------------------------------------


def test_retry_schedule_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE_S", "0, 1,1,1")
    assert Settings().webhook_retry_schedule_s == (0, 1, 1, 1)
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE_S", "0,-1")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("WEBHOOK_RETRY_SCHEDULE_S")
    assert Settings().webhook_retry_schedule_s == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


# ---- API routes ------------------------------------------------------------------------------------------


@pytest.fixture
def api() -> APIGatewayRestResolver:
    """The deployed API's resolver, with every route module included."""
    from functions.api.app import app

    return app


Call = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def call(api: APIGatewayRestResolver, event: Callable[[str], dict[str, Any]], lambda_context: Any) -> Call:
    def run(
        name: str, generation_id: str | None = None, tenant: str = "tenant-a"
    ) -> tuple[int, dict[str, Any]]:
        raw = event(f"webhooks/{name}")
        if generation_id:
            raw["path"] = raw["path"].replace(raw["pathParameters"]["id"], generation_id)
            raw["pathParameters"]["id"] = generation_id
        raw["requestContext"]["identity"]["apiKeyId"] = tenant
        response = api.resolve(raw, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return run


def test_secret_route_returns_the_tenants_secret(env: Env, call: Call) -> None:
    status, body = call("get_secret")
    assert status == 200
    assert body == {"secret": tenant_secret(MASTER, "tenant-a")}
    assert call("get_secret", tenant="")[0] == 401


def test_deliveries_route_is_tenant_scoped(env: Env, call: Call) -> None:
    generation = make_generation()
    with respx.mock() as mock:
        mock.post(HOOK).respond(200)
        webhooks.deliver(message_for(generation))
    status, body = call("list_deliveries", generation.id)
    assert status == 200
    assert [item["outcome"] for item in body["items"]] == ["delivered"]
    status, body = call("list_deliveries", generation.id, tenant="tenant-b")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_redeliver_starts_a_new_sequence_with_the_same_webhook_id(env: Env, call: Call) -> None:
    generation = make_generation()
    webhooks.schedule_first_delivery(generation)
    status, body = call("redeliver", generation.id)
    assert status == 202
    assert body == {"webhook_id": f"msg_{generation.id}_succeeded", "sequence": 2, "status": "queued"}
    first, again = env.queued()
    assert (again.body["sequence"], again.body["attempt"]) == (2, 1)
    assert again.body["occurred_at"] == first.body["occurred_at"]
    with respx.mock() as mock:
        route = mock.post(HOOK).respond(200)
        webhooks.deliver(due(again))
    assert route.calls.last.request.headers["webhook-id"] == f"msg_{generation.id}_succeeded"
    assert call("redeliver", generation.id, tenant="tenant-b")[0] == 404


@pytest.mark.parametrize(
    ("status", "webhook_url", "expected"),
    [
        pytest.param(Status.PROCESSING, HOOK, "processing", id="not-terminal"),
        pytest.param(Status.SUCCEEDED, None, "no webhook_url", id="no-webhook"),
    ],
)
def test_redeliver_conflicts(
    env: Env, call: Call, status: Status, webhook_url: str | None, expected: str
) -> None:
    generation = make_generation(status=status, webhook_url=webhook_url)
    code, body = call("redeliver", generation.id)
    assert code == 409 and body["error"]["code"] == "conflict"
    assert expected in body["error"]["message"]
    assert env.queued() == []


# ---- handler ---------------------------------------------------------------------------------------------


def test_handler_reports_only_the_malformed_record(
    env: Env, event: Callable[[str], dict[str, Any]], lambda_context: Any
) -> None:
    from functions.webhooks.app import lambda_handler

    response = lambda_handler(event("webhooks/malformed_record"), lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "7c1d2e3f-0000-4000-8000-000000000001"}]}
