"""AWS API calls and Step Functions state transitions per generation, callback on time vs. lost.

Runs the local stack in-process (every handler, the real state machine definition), counts each boto3
call the pipeline makes by service and operation, and reads the fallback execution's history. Run:
`.venv/bin/python -m bench.per_generation` (results in bench/results/per_generation.json).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from botocore.client import BaseClient

from kling_local.stack.runner import LocalStack
from kling_pipeline.config import get_settings

RESULTS = Path(__file__).parent / "results"
ENV = {
    "LOCAL_API_KEYS": "bench-key=bench",
    "FALLBACK_FIRST_POLL_S": "4",
    "FALLBACK_MAX_INTERVAL_S": "2",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
BODY = {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 5, "provider": "kling"}

calls: Counter[tuple[str, str]] = Counter()
_original = BaseClient._make_api_call  # type: ignore[attr-defined]


def _counting(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    calls[(self.meta.service_model.service_name, operation_name)] += 1
    return _original(self, operation_name, api_params)


def measure(
    stack: LocalStack, api: httpx.Client, *, drop_callbacks: bool, generation_s: float
) -> dict[str, Any]:
    assert stack.simulator is not None
    stack.simulator.configure(
        callback_drop_rate=1.0 if drop_callbacks else 0.0, generation_time_s=generation_s
    )
    calls.clear()
    generation_id = api.post("/v1/generations", json=BODY).json()["id"]
    sfn = stack.client("stepfunctions")
    arn = str(get_settings().state_machine_arn).replace(":stateMachine:", ":execution:") + f":{generation_id}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
            break
        time.sleep(0.5)
    time.sleep(1.5)  # let queue consumers settle (deleting messages is part of the cost)
    status = api.get(f"/v1/generations/{generation_id}").json()["status"]
    ours = Counter({key: count for key, count in calls.items() if not _is_measurement(key)})
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    by_service: Counter[str] = Counter()
    for (service, _), count in ours.items():
        by_service[service] += count
    return {
        "status": status,
        "state_transitions": sum(1 for event in history if event["type"].endswith("StateEntered")),
        "aws_calls_total": sum(ours.values()),
        "aws_calls_by_service": dict(sorted(by_service.items())),
        "aws_calls_by_operation": {f"{s}.{o}": n for (s, o), n in sorted(ours.items())},
    }


def _is_measurement(key: tuple[str, str]) -> bool:
    """Not the pipeline's cost: the benchmark's own polling, and the idle long-polls of the local queue
    consumers (in AWS, Lambda's event source mappings poll whether or not anything is generated)."""
    return key in {
        ("stepfunctions", "DescribeExecution"),
        ("stepfunctions", "GetExecutionHistory"),
        ("sqs", "ReceiveMessage"),
    }


def main() -> dict[str, Any]:
    BaseClient._make_api_call = _counting  # type: ignore[attr-defined]
    stack = LocalStack(env_overrides=ENV)
    try:
        with (
            stack,
            httpx.Client(base_url=stack.api_url, headers={"x-api-key": "bench-key"}, timeout=30) as api,
        ):
            return {
                "benchmark": "per_generation",
                "note": "steady state after one warm-up generation; local stack, provider pinned to kling; "
                "idle sqs.ReceiveMessage long-polls excluded; sqs.DeleteMessage: the event source mappings'",
                "warm_up": measure(stack, api, drop_callbacks=False, generation_s=1.0)["status"],
                # The provider finishes at 1 s, the first poll is at 4 s: the callback wins.
                "callback_on_time": measure(stack, api, drop_callbacks=False, generation_s=1.0),
                # No callback; the provider finishes at 7 s: polls at 4, 6 and 8 s, the last one ingests.
                "callback_lost": measure(stack, api, drop_callbacks=True, generation_s=7.0),
            }
    finally:
        BaseClient._make_api_call = _original  # type: ignore[attr-defined]


if __name__ == "__main__":
    outcome = main()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "per_generation.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
