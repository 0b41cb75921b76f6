"""AWS API calls and Step Functions state transitions per generation, callback on time vs. lost.

Runs the local stack in-process (every handler, the real state machine definition), counts each boto3
call the pipeline makes by service and operation, times every Lambda invocation, and reads the fallback
execution's history (when there is one). Run:
`.venv/bin/python -m bench.per_generation` (results in bench/results/per_generation.json).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from kling_local.stack.lambdas import FunctionRegistry
from kling_local.stack.runner import LocalStack
from kling_pipeline.config import get_settings

RESULTS = Path(__file__).parent / "results"
FIRST_POLL_S = 4
ENV = {
    "LOCAL_API_KEYS": "bench-key=bench",
    "FALLBACK_FIRST_POLL_S": str(FIRST_POLL_S),
    "FALLBACK_MAX_INTERVAL_S": "2",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
BODY = {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 5, "provider": "kling"}
# A five-second 720p video from Kling is a few MB; the simulator pads its MP4 to this size.
VIDEO_BYTES = 6 * 1024 * 1024

calls: Counter[tuple[str, str]] = Counter()
# DynamoDB bills a write by the size of the item it writes (the larger of before and after, in 1 KB units;
# an item of a transaction at twice that). Writes of the generation's item are weighed, before and after
# each; every other item the pipeline writes (receipts, slots, counters, budget usage, settlement marker,
# override check) is a few hundred bytes: one unit.
write_units: Counter[str] = Counter()  # "plain" / "transaction" → request units before the 2x
writes: Counter[str] = Counter()  # "generation" / "other" → how many items were written
durations: list[tuple[str, float, int]] = []
_bench_clients: set[int] = set()  # the benchmark's own clients: their calls are not the pipeline's
_weigher: list[Any] = []  # the benchmark's own DynamoDB client (set per measurement)
_original = BaseClient._make_api_call  # type: ignore[attr-defined]
_original_invoke = FunctionRegistry.invoke
_PLAIN_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def _counting(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    if id(self) in _bench_clients:
        return _original(self, operation_name, api_params)
    calls[(self.meta.service_model.service_name, operation_name)] += 1
    if operation_name == "TransactWriteItems":
        kind, written = "transaction", [next(iter(item.values())) for item in api_params["TransactItems"]]
    elif operation_name in _PLAIN_WRITES and self.meta.service_model.service_name == "dynamodb":
        kind, written = "plain", [api_params]
    else:
        return _original(self, operation_name, api_params)
    keys = [_generation_key(write) for write in written]
    before = [_weight(key) for key in keys]
    try:
        return _original(self, operation_name, api_params)
    finally:
        for key, weighed in zip(keys, before, strict=True):
            writes["other" if key is None else "generation"] += 1
            write_units[kind] += 1 if key is None else max(1, weighed, _weight(key))


def _generation_key(write: dict[str, Any]) -> dict[str, Any] | None:
    key = write.get("Key") or write.get("Item") or {}
    if key.get("sk") not in ("GEN", {"S": "GEN"}):
        return None
    pk = key["pk"]
    return {"pk": pk if isinstance(pk, dict) else {"S": pk}, "sk": {"S": "GEN"}}


def _weight(key: dict[str, Any] | None) -> int:
    """The generation's item's size in DynamoDB's 1 KB write units (0: no item yet)."""
    if key is None:
        return 0
    item = _weigher[0].get_item(TableName=get_settings().generations_table, Key=key, ConsistentRead=True)
    return math.ceil(_item_bytes(item.get("Item", {})) / 1024)


def _item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: each attribute's name plus its value (UTF-8 for strings,
    about one byte per two digits for numbers, 3 bytes of overhead per map or list)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return (len(str(data).lstrip("-").replace(".", "").strip("0")) + 1) // 2 + 1
    if kind == "B":
        return len(data)
    if kind == "M":
        return 3 + _item_bytes(data)
    if kind == "L":
        return 3 + sum(1 + _value_bytes(element) for element in data)
    return 1  # BOOL, NULL


def _timed_invoke(self: FunctionRegistry, ref: str, event: Any) -> Any:
    started = time.perf_counter()
    try:
        return _original_invoke(self, ref, event)
    finally:
        spec = self.get(ref)
        durations.append((spec.logical_id, time.perf_counter() - started, spec.memory_mb))


def _bench_client(stack: LocalStack, service: str) -> Any:
    client = stack.client(service)
    _bench_clients.add(id(client))
    return client


def measure(
    stack: LocalStack, api: httpx.Client, *, drop_callbacks: bool, generation_s: float
) -> dict[str, Any]:
    """One generation from POST to final state, plus the safety net coming due and settling."""
    assert stack.simulator is not None
    stack.simulator.configure(
        callback_drop_rate=1.0 if drop_callbacks else 0.0,
        generation_time_s=generation_s,
        output_pad_to_bytes=VIDEO_BYTES,
    )
    sfn = _bench_client(stack, "stepfunctions")
    table = _bench_client(stack, "dynamodb")
    time.sleep(2)  # let the previous generation's stragglers finish before counting
    calls.clear()
    write_units.clear()
    writes.clear()
    durations.clear()
    _weigher[:] = [table]
    generation_id = api.post("/v1/generations", json=BODY).json()["id"]
    key = {"pk": {"S": f"GEN#{generation_id}"}, "sk": {"S": "GEN"}}
    table_name = get_settings().generations_table
    deadline = time.monotonic() + 90
    item: dict[str, Any] = {}
    while time.monotonic() < deadline:
        item = table.get_item(TableName=table_name, Key=key, ConsistentRead=True).get("Item", {})
        doc = json.loads(item["doc"]["S"]) if item else {}
        if doc.get("announced"):
            break
        time.sleep(0.25)
    # The safety net comes due at the first poll time; give it (and a fallback it starts) time to settle.
    time.sleep(FIRST_POLL_S + 3)
    arn = str(get_settings().state_machine_arn).replace(":stateMachine:", ":execution:") + f":{generation_id}"
    history: list[dict[str, Any]] = []
    for _ in range(60):
        try:
            execution = sfn.describe_execution(executionArn=arn)
        except ClientError:
            break  # never started: the callback finished the generation first
        if execution["status"] != "RUNNING":
            history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            break
        time.sleep(0.5)
    time.sleep(1.5)  # let queue consumers settle (deleting messages is part of the cost)
    pipeline = Counter({key: count for key, count in calls.items() if not _is_measurement(key)})
    status = api.get(f"/v1/generations/{generation_id}").json()["status"]  # a client reading the result
    client_read = Counter({key: count for key, count in calls.items() if not _is_measurement(key)}) - pipeline
    by_service: Counter[str] = Counter()
    for (service, _), count in pipeline.items():
        by_service[service] += count
    return {
        "status": status,
        "state_transitions": sum(1 for event in history if event["type"].endswith("StateEntered")),
        "aws_calls_total": sum(pipeline.values()),
        "aws_calls_by_service": dict(sorted(by_service.items())),
        "aws_calls_by_operation": {f"{s}.{o}": n for (s, o), n in sorted(pipeline.items())},
        "client_status_read_calls": {f"{s}.{o}": n for (s, o), n in sorted(client_read.items())},
        "dynamodb_items_written": dict(writes),
        "dynamodb_write_units": dict(write_units),
        "lambda_invocations": [
            {"function": function, "ms": round(seconds * 1000, 1), "memory_mb": memory}
            for function, seconds, memory in durations
        ],
        "generation_item_bytes": _item_bytes(item),
    }


def _is_measurement(key: tuple[str, str]) -> bool:
    """Not the pipeline's cost: the idle long-polls of the local queue consumers (in AWS, Lambda's event
    source mappings poll whether or not anything is generated)."""
    return key == ("sqs", "ReceiveMessage")


def main() -> dict[str, Any]:
    BaseClient._make_api_call = _counting  # type: ignore[attr-defined]
    FunctionRegistry.invoke = _timed_invoke  # type: ignore[method-assign]
    stack = LocalStack(env_overrides=ENV)
    try:
        with (
            stack,
            httpx.Client(base_url=stack.api_url, headers={"x-api-key": "bench-key"}, timeout=30) as api,
        ):
            return {
                "benchmark": "per_generation",
                "note": "steady state after one warm-up generation; local stack, provider pinned to kling, "
                f"video padded to {VIDEO_BYTES} bytes; counted from the POST until the safety net has come "
                "due and settled; idle sqs.ReceiveMessage long-polls excluded; sqs.DeleteMessageBatch: the "
                "event source mappings'; the client's one GET of the result is listed apart",
                "video_bytes": VIDEO_BYTES,
                "warm_up": measure(stack, api, drop_callbacks=False, generation_s=1.0)["status"],
                # The provider finishes at 1 s, the first poll is at 4 s: the callback wins.
                "callback_on_time": measure(stack, api, drop_callbacks=False, generation_s=1.0),
                # No callback; the provider finishes at 7 s: the fallback starts at 4 s and polls to the end.
                "callback_lost": measure(stack, api, drop_callbacks=True, generation_s=7.0),
            }
    finally:
        BaseClient._make_api_call = _original  # type: ignore[attr-defined]
        FunctionRegistry.invoke = _original_invoke  # type: ignore[method-assign]


if __name__ == "__main__":
    outcome = main()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "per_generation.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
