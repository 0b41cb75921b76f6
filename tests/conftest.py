"""Shared fixtures: a Lambda context and the sample events of `events/` (the same files `sam local invoke -e`
uses), plus an environment in which Powertools needs no AWS: tracing off, a metrics namespace set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# Before anything imports kling_pipeline.observability: Tracer and Metrics read these when created.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "KlingPipelineTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "kling-pipeline")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# `functions/` is deployed as the handler code, not installed: make it importable as in Lambda.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class FakeLambdaContext:
    function_name: str = "kling-pipeline-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:kling-pipeline-test"
    aws_request_id: str = "5f7e1f2a-0000-4000-8000-000000000001"
    log_group_name: str = "/aws/lambda/kling-pipeline-test"
    log_stream_name: str = "2026/11/21/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    """`event("api/create_generation")` → a fresh copy of events/api/create_generation.json."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
        return data

    return load


def pytest_configure(config: pytest.Config) -> None:
    # Powertools warns on every invocation that emits no business metric (most GETs); expected, not news.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")
