"""One local stack (moto + simulator + in-process handlers) shared by the pipeline tests.

Timing knobs are seconds so fallback, retry and deadline paths run inside the suite's budget.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kling_local.simulator.config import SimConfig
from kling_local.stack.runner import LocalStack
from kling_pipeline.providers.registry import get_accounts
from kling_pipeline.store.slots import get_slot_store
from tests.integration.waiting import wait_for

KEY_A, KEY_B = "key-a", "key-b"
KEY_C, TENANT_C = "key-c", "tenant-c"  # the budget tests' own tenant
KEY_D = "key-d"  # generations with loopback webhook URLs, unloadable once the local escape hatch is off
FAST_PROVIDER = {"generation_time_s": 1.0, "seed": 7}


@pytest.fixture(scope="package")
def stack() -> Iterator[LocalStack]:
    env = {
        "LOCAL_API_KEYS": f"{KEY_A}=tenant-a,{KEY_B}=tenant-b,{KEY_C}={TENANT_C},{KEY_D}=tenant-d",
        "FALLBACK_FIRST_POLL_S": "2",
        "FALLBACK_MAX_INTERVAL_S": "2",
        "TASK_DEADLINE_S": "90",
        "SUBMIT_RETRY_BASE_S": "1",
        "SUBMIT_RETRY_MAX_S": "2",
        # The simulator's accounts take any number of tasks unless a test limits them; a tight limit of
        # ours would make tests wait on the slots of others' never-ending tasks.
        "DEFAULT_ACCOUNT_CONCURRENCY": "50",
        "ACCOUNT_BACKOFF_S": "1",
    }
    with LocalStack(api_port=0, aws_port=0, simulator=True, simulator_port=0, env_overrides=env) as running:
        yield running


@pytest.fixture
def sim(stack: LocalStack) -> Iterator[Any]:
    """The simulator with fast, well-behaved defaults; each test sets its own faults."""
    simulator = stack.simulator
    assert simulator is not None
    simulator.config = SimConfig(**FAST_PROVIDER)
    yield simulator
    simulator.config = SimConfig(**FAST_PROVIDER)
    # The simulator's limits are gone again: so is what its throttles taught admission control.
    for provider, accounts in get_accounts().items():
        for account in accounts:
            get_slot_store().forget(provider.value, account.name)


def tenant_client(stack: LocalStack, key: str) -> httpx.Client:
    """An API client whose requests carry `key` (one tenant of LOCAL_API_KEYS)."""
    return httpx.Client(base_url=stack.api_url, headers={"x-api-key": key}, timeout=30)


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with tenant_client(stack, KEY_A) as client:
        yield client


@pytest.fixture
def api_b(stack: LocalStack) -> Iterator[httpx.Client]:
    with tenant_client(stack, KEY_B) as client:
        yield client


@pytest.fixture
def api_c(stack: LocalStack) -> Iterator[httpx.Client]:
    """Tenant C: its month's usage holds only what the budget tests made."""
    with tenant_client(stack, KEY_C) as client:
        yield client


@pytest.fixture
def api_d(stack: LocalStack) -> Iterator[httpx.Client]:
    """Tenant D: generations whose webhook URLs are loopback receivers, kept out of others' listings."""
    with tenant_client(stack, KEY_D) as client:
        yield client


def wait_terminal(api: httpx.Client, generation_id: str, *, timeout: float = 60) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/v1/generations/{generation_id}").json()
        return body if body["status"] in {"succeeded", "failed", "canceled"} else None

    result: dict[str, Any] = wait_for(terminal, timeout=timeout)
    return result


@pytest.fixture
def bus_listener(stack: LocalStack) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """A test rule on the stack's bus → an SQS queue: everything the pipeline publishes."""
    events, sqs = stack.client("events"), stack.client("sqs")
    name = f"it-listener-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=name, EventBusName=stack.event_bus_name, EventPattern=json.dumps({"source": ["kling-pipeline"]})
    )
    events.put_targets(
        Rule=name, EventBusName=stack.event_bus_name, Targets=[{"Id": "listener", "Arn": queue_arn}]
    )
    seen: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return seen

    yield read
    events.remove_targets(Rule=name, EventBusName=stack.event_bus_name, Ids=["listener"])
    events.delete_rule(Name=name, EventBusName=stack.event_bus_name)
    sqs.delete_queue(QueueUrl=queue_url)


def put_requested(stack: LocalStack, detail: dict[str, Any]) -> None:
    answer = stack.client("events").put_events(
        Entries=[
            {
                "Source": "kling-pipeline.requests",  # the template's default EventSources
                "DetailType": "Generation Requested",
                "Detail": json.dumps(detail),
                "EventBusName": stack.event_bus_name,
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0
