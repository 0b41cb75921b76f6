"""Infrastructure cost per 1,000 five-second videos, from measured counts and a dated price table.

Inputs: `results/per_generation.json` (AWS calls, state transitions, every Lambda invocation's measured
duration and memory, the generation item's size) and `prices.json` (us-east-1, dated, kept as data).
What is priced: API Gateway REST requests (the API and callback functions' invocations, the client's one
GET of the result included), Lambda requests and GB-seconds (arm64, durations rounded up to the ms),
DynamoDB on-demand request units (each write at the size of the item it wrote, as per_generation weighed
it; each item of a transaction at twice a write's units, as DynamoDB bills transactions; consistent reads
at the generation item's final size), SQS requests
(sends, the event source mapping's receive and delete per batch), S3 requests, EventBridge events, Step
Functions Standard transitions. Not priced: storage of the videos (the product, not the pipeline),
CloudWatch logs and metrics, X-Ray traces, data transfer. Run: `make bench` (or
`.venv/bin/python -m bench.cost` after `bench.per_generation`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"
VIDEOS = 1000
_API_FUNCTIONS = {"ApiFunction", "CallbackFunction"}
_S3_PUT_CLASS = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject"}
_S3_GET_CLASS = {"GetObject", "HeadObject"}
_DYNAMODB_READS = {"GetItem", "Query"}


def per_generation_cost(run: dict[str, Any], prices: dict[str, Any]) -> dict[str, float]:
    """USD per generation, by service."""
    ops: dict[str, int] = {}
    for calls in (run["aws_calls_by_operation"], run.get("client_status_read_calls", {})):
        for name, n in calls.items():
            ops[name] = ops.get(name, 0) + n

    def count(service: str, names: set[str]) -> int:
        return sum(
            n for op, n in ops.items() if op.split(".", 1)[0] == service and op.split(".", 1)[1] in names
        )

    invocations = run["lambda_invocations"]
    gb_s = sum(math.ceil(i["ms"]) / 1000 * i["memory_mb"] / 1024 for i in invocations)
    api_requests = sum(1 for i in invocations if i["function"] in _API_FUNCTIONS)
    rru = math.ceil(max(1, int(run["generation_item_bytes"])) / 4096)
    units = {"plain": 0, "transaction": 0, **run.get("dynamodb_write_units", {})}
    sqs_batches = ops.get("sqs.DeleteMessageBatch", 0) + ops.get("sqs.DeleteMessage", 0)
    sqs_requests = ops.get("sqs.SendMessage", 0) + ops.get("sqs.SendMessageBatch", 0) + 2 * sqs_batches
    return {
        "api_gateway": api_requests * prices["api_gateway_rest_request"],
        "lambda_requests": len(invocations) * prices["lambda_request"],
        "lambda_duration": gb_s * prices["lambda_arm64_gb_second"],
        "dynamodb": (units["plain"] + 2 * units["transaction"])
        * prices["dynamodb_on_demand_write_request_unit"]
        + count("dynamodb", _DYNAMODB_READS) * rru * prices["dynamodb_on_demand_read_request_unit"],
        "sqs": sqs_requests * prices["sqs_standard_request"],
        "s3": count("s3", _S3_PUT_CLASS) * prices["s3_standard_put_copy_post_list_request"]
        + count("s3", _S3_GET_CLASS) * prices["s3_standard_get_request"],
        "eventbridge": ops.get("events.PutEvents", 0) * prices["eventbridge_custom_event"],
        "step_functions": run["state_transitions"] * prices["step_functions_standard_state_transition"],
    }


def main() -> dict[str, Any]:
    prices = json.loads((HERE / "prices.json").read_text())
    runs = json.loads((RESULTS / "per_generation.json").read_text())
    scenarios = {}
    for scenario in ("callback_on_time", "callback_lost"):
        cost = per_generation_cost(runs[scenario], prices)
        scenarios[scenario] = {
            "usd_per_1000_videos": round(sum(cost.values()) * VIDEOS, 4),
            "by_service_usd_per_1000": {name: round(usd * VIDEOS, 5) for name, usd in cost.items()},
        }
    return {
        "benchmark": "cost",
        "prices_as_of": prices["as_of"],
        "region": prices["region"],
        "videos": VIDEOS,
        "video": runs.get("video_bytes"),
        "scenarios": scenarios,
    }


if __name__ == "__main__":
    result = main()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
