"""Cold import of every handler, from a build laid out as Lambda mounts it, as a ratio to its own floor.

Layout (under `.bench/`, rebuilt each run): the function's code in `function/` (Lambda's /var/task) and the
layer in `layer/python/` (Lambda's /opt/python): `kling_pipeline` plus `layers/core/requirements.txt`
pip-installed with `--no-compile`. Two variants of the same files: `source` (no `.pyc` anywhere, and
none written — Lambda's file system is read-only, so every cold start compiles the layer again) and
`bytecode` (`compileall` with unchecked-hash `.pyc`, what a build that ships bytecode produces).

Each measurement is one fresh interpreter (`python -S`, paths set as Lambda sets them): the CPU time it
uses from spawn to exit (user + system, from `wait4`; wall time on a shared machine mostly measures the
neighbours), median of `--runs`:
- handler: `import app` and build the AWS clients its path uses (they are built on first use, so an
  import alone would hide their cost in the first invocation);
- floor: the interpreter, `import boto3`, exactly those clients from one session, and `import httpx,
  pydantic` where the handler uses them — what no handler can go below.
Tracing off (POWERTOOLS_TRACE_DISABLED) is the headline; `tracing_on` re-measures the bytecode variant in
a Lambda-like environment where Powertools turns X-Ray on, which loads the X-Ray SDK.
Run: `make bench` (or `.venv/bin/python -m bench.cold_import`).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
WORK = ROOT / ".bench"

# The AWS clients each handler's path builds (kling_pipeline.aws factories) and whether it uses httpx.
HANDLERS: dict[str, dict[str, Any]] = {
    "api": {"clients": ["generations_table", "sqs", "s3"], "httpx": True},
    "callback": {"clients": ["generations_table", "sqs"], "httpx": False},
    "ingest": {"clients": ["generations_table", "s3", "events"], "httpx": True},
    "poller": {"clients": ["generations_table", "s3", "events"], "httpx": True},
    "submitter": {"clients": ["generations_table", "sqs", "stepfunctions"], "httpx": True},
    "webhooks": {"clients": ["generations_table", "sqs"], "httpx": True},
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


def build(deps: Path) -> dict[str, Path]:
    """`.bench/<variant>/` for both variants; the pip-installed dependencies are cached in `deps`."""
    if not deps.exists():
        requirements = str(ROOT / "layers/core/requirements.txt")
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(deps)]
        subprocess.run([*pip, "-r", requirements], check=True)
    roots = {}
    for variant in ("source", "bytecode"):
        root = WORK / variant
        shutil.rmtree(root, ignore_errors=True)
        python = root / "layer/python"
        shutil.copytree(deps, python, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "bin"))
        shutil.copytree(
            ROOT / "layers/core/kling_pipeline",
            python / "kling_pipeline",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for name in HANDLERS:
            shutil.copytree(
                ROOT / "functions" / name,
                root / "function" / name,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        if variant == "bytecode":
            compileall.compile_dir(
                root,
                quiet=1,
                workers=0,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        roots[variant] = root
    return roots


def _code(root: Path, handler: str, *, floor: bool) -> str:
    spec = HANDLERS[handler]
    layer = root / "layer/python"
    if floor:
        lines = [
            f"import sys; sys.path[:0] = [{str(layer)!r}]",
            "import boto3",
            "session = boto3.session.Session()",
        ]
        lines += [_FLOOR_CLIENT[name] for name in spec["clients"]]
        lines.append("import pydantic" + (", httpx" if spec["httpx"] else ""))
    else:
        function = root / "function" / handler
        lines = [f"import sys; sys.path[:0] = [{str(function)!r}, {str(layer)!r}]", "import app"]
        lines.append("from kling_pipeline import aws")
        lines += [f"aws.{name}()" for name in spec["clients"]]
    return "\n".join(lines)


def _once(code: str, env: dict[str, str]) -> float:
    """CPU seconds (user + system) the fresh interpreter used from spawn to exit: on a shared 2-core
    machine wall time mostly measures the neighbours, CPU time measures the import."""
    process = subprocess.Popen([sys.executable, "-S", "-c", code], env=env, cwd="/")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"the measured interpreter failed: {code!r}")
    return usage.ru_utime + usage.ru_stime


def measure(roots: dict[str, Path], runs: int) -> dict[str, Any]:
    off = {**ENV, "POWERTOOLS_TRACE_DISABLED": "true"}
    results: dict[str, Any] = {}
    for handler in HANDLERS:
        row: dict[str, Any] = {}
        for variant, root in roots.items():
            samples: dict[str, list[float]] = {"handler": [], "floor": [], "tracing_on": []}
            on = {**ENV, "LAMBDA_TASK_ROOT": str(root / "function" / handler)}
            for _ in range(runs):  # interleaved, so load on the machine hits both alike
                samples["floor"].append(_once(_code(root, handler, floor=True), off))
                samples["handler"].append(_once(_code(root, handler, floor=False), off))
                if variant == "bytecode":
                    samples["tracing_on"].append(_once(_code(root, handler, floor=False), on))
            floor = statistics.median(samples["floor"])
            handler_s = statistics.median(samples["handler"])
            row[variant] = {
                "floor_ms": round(floor * 1000),
                "handler_ms": round(handler_s * 1000),
                "ratio": round(handler_s / floor, 2),
            }
            if samples["tracing_on"]:
                traced = statistics.median(samples["tracing_on"])
                row[variant]["tracing_on_ms"] = round(traced * 1000)
                row[variant]["tracing_on_ratio"] = round(traced / floor, 2)
        results[handler] = row
        print(handler, json.dumps(row), flush=True)
    return results


def main(runs: int) -> dict[str, Any]:
    roots = build(WORK / "deps")
    return {
        "benchmark": "cold_import",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "runs_per_measurement": runs,
        "statistic": "median CPU time (user + system) of a fresh interpreter, spawn to exit",
        "handlers": measure(roots, runs),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    result = main(args.runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cold_import.json").write_text(json.dumps(result, indent=2) + "\n")
