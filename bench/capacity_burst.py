"""Admission control under a burst: N generations (default 300) from one tenant on two Kling accounts of
5 slots each, every task taking T seconds at the simulator, while a second tenant sends single requests.

Measured: failures, the simulator's in-flight peak and 1303 count per account, makespan against the
ideal ceil(N / 10) x T, the late tenant's wait (our create → the provider's create), and the DynamoDB
calls per generation that admission control adds (slot, queue and task-time items). Run:
`.venv/bin/python -m bench.capacity_burst --task-s 10` (results in bench/results/capacity_burst.json, one
entry per generation count and task time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from botocore.client import BaseClient

from bench.provenance import provenance
from kling_local.chaos.run import list_generations
from kling_local.simulator.config import SimAccount, SimConfig
from kling_local.stack.runner import LocalStack

RESULTS = Path(__file__).parent / "results"
SLOTS, ACCOUNTS = 5, 2
BODY = {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 3}
_MARKERS = ("ACCOUNT#", "QUEUE", "STATS#TASK_SECONDS")

calls: Counter[str] = Counter()
_lock = threading.Lock()
_original = BaseClient._make_api_call  # type: ignore[attr-defined]


def _counting(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    if self.meta.service_model.service_name == "dynamodb":
        text = json.dumps(api_params, default=_condition_text)
        kind = "admission" if any(marker in text for marker in _MARKERS) else "other"
        with _lock:
            calls[kind] += 1
            calls[f"{kind}.{operation_name}"] += 1
    return _original(self, operation_name, api_params)


def _condition_text(value: Any) -> str:
    """boto3 resource conditions (Key("pk").eq(...)) carry their values in get_expression()."""
    expression = getattr(value, "get_expression", None)
    return str(expression()) if callable(expression) else str(value)


def run(n: int, task_s: float, queue_workers: int = 1) -> dict[str, Any]:
    accounts = [
        SimAccount(
            provider="kling", name=name, key=f"ak-{name}", secret=f"sk-{name}-" + "x" * 32, concurrency=SLOTS
        )
        for name in ("a", "b")
    ]
    env = {
        "LOCAL_API_KEYS": "bench-a=tenant-a,bench-b=tenant-b",
        "FALLBACK_FIRST_POLL_S": "300",
        "FALLBACK_MAX_INTERVAL_S": "300",
        "TASK_DEADLINE_S": "1800",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "EVOLINK_API_KEY": "",
        "KLING3API_API_KEY": "",
    }
    config = SimConfig(generation_time_s=task_s, seed=1)
    with LocalStack(
        simulator_config=config, simulator_accounts=accounts, env_overrides=env, queue_workers=queue_workers
    ) as stack:
        assert stack.simulator is not None
        sim = stack.simulator
        a = httpx.Client(base_url=stack.api_url, headers={"x-api-key": "bench-a"}, timeout=120)
        b = httpx.Client(base_url=stack.api_url, headers={"x-api-key": "bench-b"}, timeout=120)
        sim.reset_stats()
        calls.clear()
        BaseClient._make_api_call = _counting  # type: ignore[attr-defined]
        started = time.time()
        burst_done = threading.Event()

        def create(client: httpx.Client, index: int) -> str:
            answer = client.post("/v1/generations", json={**BODY, "prompt": f"{BODY['prompt']} {index}"})
            answer.raise_for_status()
            return str(answer.json()["id"])

        late: list[tuple[str, float]] = []

        def late_tenant() -> None:
            while not burst_done.wait(timeout=3 * task_s):
                sent = time.time()
                late.append((create(b, len(late)), sent))

        thread = threading.Thread(target=late_tenant, daemon=True)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: create(a, i), range(n)))
        create_s = time.time() - started
        thread.start()
        while sum(1 for t in sim.tasks("kling") if t["state"] in ("succeeded", "failed")) < n:
            time.sleep(0.5)  # the simulator's own view: cheap, and no load on the stack while it works
        while len(_finished(a)) < n:
            time.sleep(1.0)
        burst_done.set()
        thread.join()
        late_ids = {gid for gid, _ in late}
        while len(_finished(b)) < len(late_ids):
            time.sleep(1.0)
        BaseClient._make_api_call = _original  # type: ignore[attr-defined]
        finished_a = _finished(a)
        ends = [body["updated_at"] for body in finished_a]
        from datetime import datetime

        makespan = max(datetime.fromisoformat(e).timestamp() for e in ends) - started
        tasks = {task["external_task_id"]: task for task in sim.tasks("kling")}
        waits = [tasks[gid]["created_at"] - sent for gid, sent in late if gid in tasks]
        gaps = _refill_gaps(list(tasks.values()), until=max(t["created_at"] for t in tasks.values()))
        stats = sim.stats()["accounts"]
        statuses = Counter(body["status"] for body in finished_a + _finished(b))
        generations = n + len(late)
        ideal = math.ceil(n / (SLOTS * ACCOUNTS)) * task_s
        return {
            "generations": n,
            "task_s": task_s,
            "queue_workers": queue_workers,
            "accounts": {name: {"concurrency": SLOTS, **stats[f"kling/{name}"]} for name in ("a", "b")},
            "failures": generations - statuses.get("succeeded", 0),
            "responses_1303": sum(stats[f"kling/{name}"]["throttled"] for name in ("a", "b")),
            "create_burst_s": round(create_s, 2),
            "makespan_s": round(makespan, 2),
            "ideal_s": ideal,
            "makespan_over_ideal": round(makespan / ideal, 3),
            "refill_gap_median_s": round(statistics.median(gaps), 3) if gaps else None,
            "refill_gap_p90_s": round(sorted(gaps)[int(0.9 * (len(gaps) - 1))], 3) if gaps else None,
            "late_tenant_requests": len(waits),
            "late_tenant_median_wait_s": round(statistics.median(waits), 2) if waits else None,
            "late_tenant_max_wait_s": round(max(waits), 2) if waits else None,
            "dynamodb_calls_per_generation_admission": round(calls["admission"] / generations, 2),
            "dynamodb_calls_per_generation_other": round(calls["other"] / generations, 2),
            "dynamodb_admission_calls_by_operation": {
                key.removeprefix("admission."): round(value / generations, 2)
                for key, value in sorted(calls.items())
                if key.startswith("admission.")
            },
            "targets": {
                "failures": 0,
                "max_in_flight_per_account": SLOTS,
                "responses_1303": 0,
                "makespan_over_ideal_max": 1.15,
                "late_tenant_median_wait_max_s": 2 * task_s,
            },
        }


def _refill_gaps(tasks: list[dict[str, Any]], *, until: float) -> list[float]:
    """How long each freed slot stayed empty, by the simulator's clock: from a task's end on an account to
    the next create on that account (one create refills one end), for ends before the last create (after
    it nothing was waiting). Promptness of the event-driven refill, whatever the stack's throughput."""
    gaps: list[float] = []
    for account in {task["account"] for task in tasks}:
        mine = [task for task in tasks if task["account"] == account]
        ends = sorted(
            t["updated_at"] for t in mine if t["state"] in ("succeeded", "failed") and t["updated_at"] < until
        )
        creates = sorted(t["created_at"] for t in mine)
        position = 0
        for end in ends:
            while position < len(creates) and creates[position] < end:
                position += 1
            if position == len(creates):
                break
            gaps.append(creates[position] - end)
            position += 1
    return gaps


def _finished(client: httpx.Client) -> list[dict[str, Any]]:
    """Every terminal generation of the client's tenant (the list route, not GET per id)."""
    return [
        item for item in list_generations(client) if item["status"] in {"succeeded", "failed", "canceled"}
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=300)
    parser.add_argument("--task-s", type=float, default=10.0)
    parser.add_argument(
        "--queue-workers",
        type=int,
        default=1,
        help="concurrent invocations per SQS source (Lambda runs several batches of a queue at once)",
    )
    args = parser.parse_args()
    command = (
        f".venv/bin/python -m bench.capacity_burst --generations {args.generations} --task-s {args.task_s}"
        f" --queue-workers {args.queue_workers}"
    )
    measured = run(args.generations, args.task_s, args.queue_workers)
    result = {**measured, **provenance(command, machine_note=_load_note())}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "capacity_burst.json"
    # One entry per (generations, task time, workers): a short T shows the stack's own throughput, a long
    # one the admission control's refill.
    previous = json.loads(path.read_text()).get("runs", []) if path.exists() else []

    def key(entry: dict[str, Any]) -> tuple[int, float, int]:
        return entry["generations"], entry["task_s"], entry.get("queue_workers", 1)

    runs = sorted([entry for entry in previous if key(entry) != key(result)] + [result], key=key)
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _load_note() -> str:
    """The machine is shared: its load average says how much of it this run had."""
    one, five, _ = os.getloadavg()
    return f", {os.cpu_count()} cores shared, load average {one:.1f} (1 min) {five:.1f} (5 min) at the end"


if __name__ == "__main__":
    main()
