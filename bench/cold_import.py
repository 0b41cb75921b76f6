"""Cold import of every handler, from the `sam build` output as Lambda mounts it, as a ratio to its own floor.

Layout: `make build`'s `.aws-sam/build/`, as built: the function's folder `<Name>Function/` first on
`sys.path` (Lambda's /var/task), then the layer's `CoreLayer/python/` (Lambda's /opt/python). The build is
arm64: on another machine its distributions with extension modules (pydantic-core, wrapt) are overlaid by
this machine's wheels of the same pins (kling_local.lambda_build), for the handler and the floor alike.
Two variants: `bytecode` (the build itself: it ships unchecked-hash `.pyc`, build/Makefile) and `source`
(a copy of it under `.bench/source/` without any `.pyc`, none written — Lambda's file system is read-only,
so a build without bytecode compiles the layer at every cold start).

Each measurement is one fresh interpreter (`python -S`, paths set as Lambda sets them): the CPU time it
uses from spawn to exit (user + system, from `wait4`; wall time on a shared machine mostly measures the
neighbours), median of `--runs`:
- handler: `import app` and build the AWS clients its path uses (they are built on first use, so an
  import alone would hide their cost in the first invocation);
- floor: the interpreter, `import boto3`, exactly those clients from one session, and `import pydantic`
  (+ `httpx` where the handler uses it) — what no handler can go below.
Tracing off (POWERTOOLS_TRACE_DISABLED) is the headline; `tracing_on` re-measures the bytecode variant in
a Lambda-like environment where Powertools turns X-Ray on, which loads the X-Ray SDK.

Reported beside the target, not part of it:
- `model_floor`: the floor plus one trivial pydantic model defined. `import pydantic` is lazy, so the floor
  holds none of pydantic's model machinery, which every handler needs (its settings are a model): this is
  the lowest a handler that defines one model can go.
- api only, `first_get` / `first_post`: the handler's cold start *and* its first request, a GET of an
  existing generation or a POST create with an Idempotency-Key (as the SDK sends it), each in a fresh
  interpreter against the local stack (moto and the provider simulator run in this process, so their CPU
  is not counted; the secrets that feed the settings are read, as in a deployed stack). The API builds a
  route's validation on its first request and its OpenAPI document only when asked, so this is what a
  cold API caller really waits for.
Run: `make bench` (it runs `make build` first; or `.venv/bin/python -m bench.cold_import` after it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from kling_local import lambda_build
from kling_local.stack.runner import LocalStack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
WORK = ROOT / ".bench"

# Each handler's function in the template.
LOGICAL_IDS = {
    "api": "ApiFunction",
    "callback": "CallbackFunction",
    "ingest": "IngestFunction",
    "poller": "PollerFunction",
    "submitter": "SubmitterFunction",
    "webhooks": "WebhookFunction",
    "s3_trigger": "S3TriggerFunction",
    "event_trigger": "EventTriggerFunction",
}
# The AWS clients each handler's path builds (kling_pipeline.aws factories) and whether it uses httpx.
HANDLERS: dict[str, dict[str, Any]] = {
    "api": {"clients": ["generations_table", "sqs", "s3"], "httpx": True},
    "callback": {"clients": ["generations_table", "sqs"], "httpx": False},
    "ingest": {"clients": ["generations_table", "s3", "events", "sqs"], "httpx": True},
    "poller": {"clients": ["generations_table", "s3", "events"], "httpx": True},
    "submitter": {"clients": ["generations_table", "sqs", "stepfunctions"], "httpx": True},
    "webhooks": {"clients": ["generations_table", "sqs", "s3"], "httpx": True},
    "s3_trigger": {"clients": ["generations_table", "sqs", "s3"], "httpx": True},
    "event_trigger": {"clients": ["generations_table", "sqs", "events"], "httpx": True},
}
_FLOOR_CLIENT = {
    "generations_table": 'session.resource("dynamodb", region_name="us-east-1").Table("t")',
    "sqs": 'session.client("sqs", region_name="us-east-1")',
    "s3": 'session.client("s3", region_name="us-east-1")',
    "events": 'session.client("events", region_name="us-east-1")',
    "stepfunctions": 'session.client("stepfunctions", region_name="us-east-1")',
}
ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "kling-pipeline",
    "POWERTOOLS_METRICS_NAMESPACE": "KlingPipeline",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PATH": os.environ.get("PATH", ""),
}
# A trivial model: what pydantic's model machinery costs on top of `import pydantic`.
_ONE_MODEL = "from pydantic import BaseModel\nclass One(BaseModel):\n    x: int\nOne(x=1)"
# The local stack for the api's first requests: one tenant, the provider pinned, logs and metrics quiet.
STACK_ENV = {
    "LOCAL_API_KEYS": "bench-key=bench",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
CREATE_BODY = {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 5, "provider": "kling"}
EVENTS = ROOT / "events" / "api"


def build(build_dir: Path) -> dict[str, dict[str, list[Path]]]:
    """The search path (function folder, extension overlay, layer) of each handler, in both variants."""
    if not (build_dir / "template.yaml").is_file():
        raise SystemExit(f"no sam build in {build_dir}: run `make build` first")
    functions = lambda_build.functions(build_dir)
    layer = lambda_build.layer_python(build_dir)
    overlay = lambda_build.install_host_extensions(
        layer, ROOT / "layers/core/requirements.txt", WORK / "host-extensions"
    )
    source = WORK / "source"
    shutil.rmtree(source, ignore_errors=True)
    no_bytecode = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(layer, source / "layer", ignore=no_bytecode)
    if overlay is not None:
        shutil.copytree(overlay, source / "overlay", ignore=no_bytecode)
    paths: dict[str, dict[str, list[Path]]] = {"source": {}, "bytecode": {}}
    for handler, logical_id in LOGICAL_IDS.items():
        function = build_dir / functions[logical_id]["CodeUri"]
        shutil.copytree(function, source / logical_id, ignore=no_bytecode)
        paths["bytecode"][handler] = [function, *([overlay] if overlay else []), layer]
        paths["source"][handler] = [
            source / logical_id,
            *([source / "overlay"] if overlay else []),
            source / "layer",
        ]
    return paths


def _code(search_path: list[Path], handler: str, *, floor: bool, then: str = "") -> str:
    """The floor sees the same path minus the function folder: the same boto3, pydantic and httpx.
    `then`: more code run after it (a model defined, a request handled)."""
    spec = HANDLERS[handler]
    if floor:
        lines = [
            f"import sys; sys.path[:0] = {[str(path) for path in search_path[1:]]!r}",
            "import boto3",
            "session = boto3.session.Session()",
        ]
        lines += [_FLOOR_CLIENT[name] for name in spec["clients"]]
        lines.append("import pydantic" + (", httpx" if spec["httpx"] else ""))
    else:
        lines = [f"import sys; sys.path[:0] = {[str(path) for path in search_path]!r}", "import app"]
        lines.append("from kling_pipeline import aws")
        lines += [f"aws.{name}()" for name in spec["clients"]]
    if then:
        lines.append(then)
    return "\n".join(lines)


def _request(event: dict[str, Any]) -> str:
    """Code that hands `event` to the api handler once and checks it was answered with a 2xx."""
    return "\n".join(
        [
            "import json",
            "class Context:",
            "    function_name = 'ApiFunction'; memory_limit_in_mb = 512; aws_request_id = 'bench'",
            "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:ApiFunction'",
            "    def get_remaining_time_in_millis(self): return 29000",
            f"answer = app.lambda_handler(json.loads({json.dumps(event)!r}), Context())",
            "assert 200 <= answer['statusCode'] < 300, answer",
        ]
    )


def _once(code: str, env: dict[str, str]) -> float:
    """CPU seconds (user + system) the fresh interpreter used from spawn to exit: on a shared 2-core
    machine wall time mostly measures the neighbours, CPU time measures the import."""
    process = subprocess.Popen(
        [sys.executable, "-S", "-c", code], env=env, cwd="/", stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"the measured interpreter failed: {code!r}")
    return usage.ru_utime + usage.ru_stime


def measure(paths: dict[str, dict[str, list[Path]]], runs: int) -> dict[str, Any]:
    off = {**ENV, "POWERTOOLS_TRACE_DISABLED": "true"}
    results: dict[str, Any] = {}
    for handler in HANDLERS:
        row: dict[str, Any] = {}
        for variant, by_handler in paths.items():
            search_path = by_handler[handler]
            samples: dict[str, list[float]] = {
                "handler": [],
                "floor": [],
                "tracing_on": [],
                "model_floor": [],
            }
            on = {**ENV, "LAMBDA_TASK_ROOT": str(search_path[0])}
            for _ in range(runs):  # interleaved, so load on the machine hits both alike
                samples["floor"].append(_once(_code(search_path, handler, floor=True), off))
                samples["handler"].append(_once(_code(search_path, handler, floor=False), off))
                if variant == "bytecode":
                    samples["tracing_on"].append(_once(_code(search_path, handler, floor=False), on))
                    model = _code(search_path, handler, floor=True, then=_ONE_MODEL)
                    samples["model_floor"].append(_once(model, off))
            floor = statistics.median(samples["floor"])
            handler_s = statistics.median(samples["handler"])
            row[variant] = {
                "floor_ms": round(floor * 1000),
                "handler_ms": round(handler_s * 1000),
                "ratio": round(handler_s / floor, 2),
            }
            for name in ("tracing_on", "model_floor"):
                if samples[name]:
                    median = statistics.median(samples[name])
                    row[variant][f"{name}_ms"] = round(median * 1000)
                    row[variant][f"{name}_ratio"] = round(median / floor, 2)
        results[handler] = row
        print(handler, json.dumps(row), flush=True)
    return results


@contextlib.contextmanager
def _stack() -> Iterator[tuple[str, dict[str, str]]]:
    """The local stack, up: its API's URL and the environment it gives its handlers (endpoints, names,
    secret names)."""
    before = dict(os.environ)
    with LocalStack(env_overrides=STACK_ENV) as stack:
        yield stack.api_url, {key: value for key, value in os.environ.items() if before.get(key) != value}


def _event(name: str, tenant: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    event["requestContext"]["identity"]["apiKeyId"] = tenant
    return {**event, **fields}


def _keyed(event: dict[str, Any]) -> dict[str, Any]:
    """A create as the SDK sends it: with a fresh Idempotency-Key (so Powertools' idempotency runs)."""
    key = f"bench-{uuid.uuid4()}"
    event["headers"] = {**event["headers"], "Idempotency-Key": key}
    event["multiValueHeaders"] = {**event["multiValueHeaders"], "Idempotency-Key": [key]}
    return event


def first_requests(search_path: list[Path], runs: int) -> dict[str, Any]:
    """The api handler's cold start plus its first GET of a generation, or its first POST create, vs the
    api's floor measured alongside (reported, not a target)."""
    with _stack() as (api_url, stack_env):
        env = {**ENV, **stack_env, "POWERTOOLS_TRACE_DISABLED": "true", "PYTHONWARNINGS": "ignore"}
        created = httpx.post(
            f"{api_url}/v1/generations",
            json=CREATE_BODY,
            headers={"x-api-key": "bench-key"},
            timeout=60,
        )
        created.raise_for_status()
        generation_id = created.json()["id"]
        get = _event(
            "get_generation",
            "bench",
            path=f"/v1/generations/{generation_id}",
            pathParameters={"id": generation_id},
        )
        samples: dict[str, list[float]] = {"floor": [], "first_get": [], "first_post": []}
        off = {**ENV, "POWERTOOLS_TRACE_DISABLED": "true"}
        for _ in range(runs):
            samples["floor"].append(_once(_code(search_path, "api", floor=True), off))
            samples["first_get"].append(
                _once(_code(search_path, "api", floor=False, then=_request(get)), env)
            )
            post = _keyed(_event("create_generation", "bench", body=json.dumps(CREATE_BODY)))
            samples["first_post"].append(
                _once(_code(search_path, "api", floor=False, then=_request(post)), env)
            )
    floor = statistics.median(samples["floor"])
    result: dict[str, Any] = {"floor_ms": round(floor * 1000)}
    for name in ("first_get", "first_post"):
        median = statistics.median(samples[name])
        result[f"{name}_ms"] = round(median * 1000)
        result[f"{name}_ratio"] = round(median / floor, 2)
    print("api first requests", json.dumps(result), flush=True)
    return result


def main(runs: int) -> dict[str, Any]:
    paths = build(ROOT / ".aws-sam" / "build")
    return {
        "benchmark": "cold_import",
        "layout": ".aws-sam/build (make build): <Name>Function/ then CoreLayer/python/",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "runs_per_measurement": runs,
        "statistic": "median CPU time (user + system) of a fresh interpreter, spawn to exit",
        "handlers": measure(paths, runs),
        "api_first_requests": first_requests(paths["bytecode"]["api"], runs),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    result = main(args.runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cold_import.json").write_text(json.dumps(result, indent=2) + "\n")
