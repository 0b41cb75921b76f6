"""Load run: sustained creates and provider callbacks on the local stack; latencies relative to a no-op.

The stack runs as its own process against a `kling-pipeline aws` endpoint (another process); the provider
simulator and this load generator share a third. For `--duration` seconds the generator opens, at fixed
intervals (open loop: a slow answer does not slow the schedule), `--rate` creates per second, the same
number of `GET /_local/noop` (the front door's own route, no handler: the baseline measured in the same
run, on the same machine, at the same time), and replays every callback the simulator has sent (a real,
authenticated callback: the pipeline takes the receipt and queues an ingest). Latencies are reported as
p50/p99 and as ratios to the no-op's, which is what stays comparable between machines. Afterwards every
generation written must reach a final state — also those of creates whose answer timed out on the
generator's side: "lost" counts those that did not. Only 127.0.0.1 is targeted.

Run: `.venv/bin/python -m bench.load` (results in bench/results/load.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.provenance import provenance
from kling_local.chaos.processes import AwsEndpointProcess, ChildProcess
from kling_local.chaos.run import TERMINAL, list_generations
from kling_local.chaos.stack_child import StackChildConfig
from kling_local.simulator import SimConfig, SimulatorServer

RESULTS = Path(__file__).parent / "results"
API_KEY = "load-key"


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(values: list[float], baseline: list[float] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else None,
    }
    if baseline:
        result["p50_ratio_to_noop"] = round(percentile(values, 0.5) / percentile(baseline, 0.5), 1)
        result["p99_ratio_to_noop"] = round(percentile(values, 0.99) / percentile(baseline, 0.99), 1)
    return result


class Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {"create": [], "callback": [], "noop": []}
        self.errors: dict[str, int] = {"create": 0, "callback": 0, "noop": 0}
        self.created: list[str] = []
        self._lock = threading.Lock()

    def timed(self, kind: str, call: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response: httpx.Response = call()
        except httpx.HTTPError:
            with self._lock:
                self.errors[kind] += 1
            return None
        elapsed = time.perf_counter() - started
        with self._lock:
            if response.status_code < 300:
                self.latencies[kind].append(elapsed)
            else:
                self.errors[kind] += 1
        return response


def run_load(rate: float, duration_s: float, settle_s: float) -> dict[str, Any]:
    sim = SimulatorServer(config=SimConfig(generation_time_s=3.0, seed=5)).start()
    recorder = Recorder()
    try:
        with AwsEndpointProcess() as endpoint:
            config = StackChildConfig(
                aws_endpoint_url=endpoint.url,
                handler_aws_endpoint_url=endpoint.url,
                env={
                    **sim.provider_env(),
                    "LOCAL_API_KEYS": f"{API_KEY}=load-tenant",
                    "FALLBACK_FIRST_POLL_S": "20",
                    "FALLBACK_MAX_INTERVAL_S": "20",
                    "POWERTOOLS_LOG_LEVEL": "WARNING",
                    "POWERTOOLS_METRICS_DISABLED": "true",
                    # The pipeline's own latency, not the providers' limits: admission control would hold
                    # the burst behind 5 slots per account as designed (bench/capacity_burst.py measures it).
                    "DEFAULT_ACCOUNT_CONCURRENCY": "500",
                },
            )
            stack = ChildProcess(
                ["-m", "kling_local.chaos.stack_child", config.model_dump_json()],
                ready_key="api_url",
                name="stack",
            )
            with stack:
                api_url = str(stack.ready["api_url"])
                return _drive(api_url, sim, recorder, rate, duration_s, settle_s)
    finally:
        sim.stop()


def _drive(
    api_url: str, sim: SimulatorServer, recorder: Recorder, rate: float, duration_s: float, settle_s: float
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    api = httpx.Client(base_url=api_url, headers={"x-api-key": API_KEY}, timeout=60, limits=limits)
    replayed: set[int] = set()
    body = {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 5}

    def create() -> None:
        response = recorder.timed("create", lambda: api.post("/v1/generations", json=body))
        if response is not None and response.status_code < 300:
            with recorder._lock:
                recorder.created.append(response.json()["id"])

    def noop() -> None:
        recorder.timed("noop", lambda: api.get("/_local/noop"))

    def replay(callback: dict[str, Any]) -> None:
        recorder.timed("callback", lambda: api.post(callback["url"], json=callback["body"]))

    started = time.monotonic()
    interval = 1.0 / rate
    tick = 0
    with ThreadPoolExecutor(max_workers=128) as pool:
        while (now := time.monotonic() - started) < duration_s:
            due = tick * interval
            if due > now:
                time.sleep(due - now)
            pool.submit(create)
            pool.submit(noop)
            tick += 1
            if tick % max(1, int(rate / 4)) == 0:  # replay the simulator's new callbacks 4 times a second
                for index, callback in enumerate(sim.callbacks()):
                    if index not in replayed and callback.get("status") is not None:
                        replayed.add(index)
                        pool.submit(replay, callback)
    achieved_s = time.monotonic() - started
    deadline = time.monotonic() + settle_s
    final: dict[str, str] = {}
    while time.monotonic() < deadline:
        # Every generation written counts, also those of creates whose answer timed out on our side.
        final = {item["id"]: item["status"] for item in list_generations(api)}
        if all(final.get(gid) in TERMINAL for gid in {*recorder.created, *final}):
            break
        time.sleep(2.0)
    lost = [gid for gid in {*recorder.created, *final} if final.get(gid) not in TERMINAL]
    noop_latencies = recorder.latencies["noop"]
    return {
        "target": {"creates_per_s": rate, "duration_s": duration_s},
        "achieved_creates_per_s": round(len(recorder.created) / achieved_s, 1),
        "create": summary(recorder.latencies["create"], noop_latencies),
        "callback_ack": summary(recorder.latencies["callback"], noop_latencies),
        "noop": summary(noop_latencies),
        "errors": recorder.errors,
        "generations_created": len(recorder.created),
        "generations_written_unanswered": len(set(final) - set(recorder.created)),
        "final_states": {s: sum(1 for v in final.values() if v == s) for s in sorted(set(final.values()))},
        "lost": len(lost),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.load")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=300.0)
    parser.add_argument("--out", default=str(RESULTS / "load.json"))
    args = parser.parse_args(argv)
    result = run_load(args.rate, args.duration, args.settle)
    result = {
        **provenance("make load", machine_note=", shared 2 cores"),
        **result,
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 1 if result["lost"] or result["errors"]["create"] else 0


if __name__ == "__main__":
    sys.exit(main())
