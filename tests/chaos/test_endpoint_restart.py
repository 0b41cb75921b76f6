"""`--aws-endpoint-url`: a stack stopped mid-flight and started again against the same endpoint loses nothing.

The provider's callbacks are all dropped, so only the fallback state machine — an execution living in the
endpoint's process while no stack runs — can finish the generation after the restart.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import httpx
import pytest

from kling_local.simulator import SimConfig, SimulatorServer
from kling_local.stack.runner import LocalStack
from tests.integration.waiting import wait_for

KEY = "restart-key"
ENV = {
    "LOCAL_API_KEYS": f"{KEY}=tenant-r",
    "FALLBACK_FIRST_POLL_S": "1",
    "FALLBACK_MAX_INTERVAL_S": "2",
    "TASK_DEADLINE_S": "120",
}


@pytest.fixture
def provider() -> Iterator[SimulatorServer]:
    with SimulatorServer(config=SimConfig(generation_time_s=1.0, callback_drop_rate=1.0, seed=3)) as sim:
        yield sim


def _stack(endpoint: str, provider: SimulatorServer, api_port: int = 0) -> LocalStack:
    env = {**ENV, **provider.provider_env()}
    return LocalStack(aws_endpoint_url=endpoint, simulator=False, api_port=api_port, env_overrides=env)


def _secrets(endpoint: str) -> dict[str, str]:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    names = [entry["Name"] for entry in client.list_secrets()["SecretList"]]
    return {name: client.get_secret_value(SecretId=name)["SecretString"] for name in names}


def test_a_generation_in_flight_survives_a_stack_restart(
    aws_endpoint: str, provider: SimulatorServer
) -> None:
    with _stack(aws_endpoint, provider) as first:
        port = int(first.api_url.rsplit(":", 1)[1])
        created = httpx.post(
            f"{first.api_url}/v1/generations",
            headers={"x-api-key": KEY},
            json={"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 5},
            timeout=30,
        )
        assert created.status_code == 202, created.text
        generation_id = created.json()["id"]
        secrets_before = _secrets(aws_endpoint)
    # No stack runs now: the fallback's polls fail as Lambda service errors and are retried.
    with _stack(aws_endpoint, provider, api_port=port) as second:
        assert _secrets(aws_endpoint) == secrets_before  # tokens and webhook secrets survive

        def finished() -> dict[str, object] | None:
            body = httpx.get(
                f"{second.api_url}/v1/generations/{generation_id}", headers={"x-api-key": KEY}, timeout=30
            ).json()
            return body if body["status"] in {"succeeded", "failed"} else None

        final = wait_for(finished, timeout=60)
        assert final["status"] == "succeeded", final
        assert second.bucket is not None
        listed = second.client("s3").list_objects_v2(Bucket=second.bucket).get("Contents", [])
        assert any(generation_id in item["Key"] for item in listed)
    assert len(provider.tasks()) == 1  # exactly one paid task
