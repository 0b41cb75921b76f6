"""`kling-pipeline local`: the whole stack on one machine, wired from `template.yaml`.

moto (as a real HTTP server) stands in for DynamoDB, S3, SQS, EventBridge, Secrets Manager, Lambda and
Step Functions; the Lambda handlers run in-process; a front door turns HTTP requests into API Gateway
events. `LocalStack` (in `runner`) is the entry point for the CLI and for tests.
"""

from __future__ import annotations

from kling_local.stack.runner import LocalStack

__all__ = ["LocalStack"]
