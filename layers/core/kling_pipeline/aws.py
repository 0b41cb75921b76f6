"""boto3 clients, created on first use and cached (cold starts stay short; tests need no import-time env).

`AWS_ENDPOINT_URL` (honoured by boto3 itself) points every client at the local stack's moto server.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from kling_pipeline.config import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


def _region() -> str:
    return get_settings().aws_region


@cache
def s3() -> S3Client:
    return boto3.session.Session().client("s3", region_name=_region(), config=_CONFIG)


@cache
def sqs() -> SQSClient:
    return boto3.session.Session().client("sqs", region_name=_region(), config=_CONFIG)


@cache
def stepfunctions() -> SFNClient:
    return boto3.session.Session().client("stepfunctions", region_name=_region(), config=_CONFIG)


@cache
def events() -> EventBridgeClient:
    return boto3.session.Session().client("events", region_name=_region(), config=_CONFIG)


@cache
def generations_table() -> Table:
    resource = boto3.session.Session().resource("dynamodb", region_name=_region(), config=_CONFIG)
    return resource.Table(get_settings().generations_table)


def reset_clients() -> None:
    """Drop cached clients (the local stack and tests change endpoints between runs)."""
    for factory in (s3, sqs, stepfunctions, events, generations_table):
        factory.cache_clear()
