"""The one Logger, Tracer and Metrics of the service; modules take child loggers."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "kling-pipeline"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="KlingPipeline", service=SERVICE)
