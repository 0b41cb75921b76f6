"""boto3 clients, created on first use and cached (cold starts stay short; tests need no import-time env).

All from one session, so botocore loads its endpoint and model data once, not once per client (a session
is not thread-safe: clients are created under a lock; the clients themselves are). `AWS_ENDPOINT_URL`
(honoured by boto3 itself) points every client at the local stack's moto server.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

from kling_pipeline.config import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


_LOCK = threading.Lock()


def _region() -> str:
    return get_settings().aws_region


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def _client(service: Any) -> Any:
    region = _region()  # outside the lock: the first settings may read their secrets (`secretsmanager`)
    with _LOCK:
        return _session().client(service, region_name=region, config=_CONFIG)


@cache
def s3() -> S3Client:
    return cast("S3Client", _client("s3"))


@cache
def sqs() -> SQSClient:
    return cast("SQSClient", _client("sqs"))


@cache
def stepfunctions() -> SFNClient:
    return cast("SFNClient", _client("stepfunctions"))


@cache
def events() -> EventBridgeClient:
    return cast("EventBridgeClient", _client("events"))


@cache
def dynamodb() -> DynamoDBClient:
    """The low-level client, for Powertools' idempotency records (our stores use `generations_table`)."""
    return cast("DynamoDBClient", _client("dynamodb"))


@cache
def secretsmanager(region: str) -> SecretsManagerClient:
    """For config itself: settings fed by secrets are being built when it is called, so the caller names
    the region."""
    with _LOCK:
        return _session().client("secretsmanager", region_name=region, config=_CONFIG)


@cache
def generations_table() -> Table:
    region, name = _region(), get_settings().generations_table
    with _LOCK:
        resource = _session().resource("dynamodb", region_name=region, config=_CONFIG)
    return resource.Table(name)


def reset_clients() -> None:
    """Drop cached clients (the local stack and tests change endpoints between runs)."""
    for factory in (_session, s3, sqs, stepfunctions, events, dynamodb, secretsmanager, generations_table):
        factory.cache_clear()
