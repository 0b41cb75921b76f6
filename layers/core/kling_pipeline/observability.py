"""The one Logger, Tracer and Metrics of the service; modules take child loggers.

The X-Ray SDK costs a cold start more than everything else a handler imports (its sampler pulls in a
botocore session), so it is loaded only when tracing is on: Powertools' own rule decides
(`POWERTOOLS_TRACE_DISABLED`, or not running in Lambda), and with tracing off the handlers get a tracer
whose decorators hand the function back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

SERVICE = "kling-pipeline"

F = TypeVar("F", bound=Callable[..., Any])


class TracerLike(Protocol):
    """What the handlers use of Powertools' Tracer: its decorators, in their `(capture_response=…)` form."""

    def capture_lambda_handler(self, *, capture_response: bool | None = None) -> Callable[[F], F]: ...

    def capture_method(self, *, capture_response: bool | None = None) -> Callable[[F], F]: ...


class _Untraced:
    """Tracing off: decorators that decorate nothing, so aws_xray_sdk is never imported."""

    def capture_lambda_handler(self, *, capture_response: bool | None = None) -> Callable[[F], F]:
        return _unchanged

    def capture_method(self, *, capture_response: bool | None = None) -> Callable[[F], F]:
        return _unchanged


def _unchanged(function: F) -> F:
    return function


def _tracer() -> TracerLike:
    from aws_lambda_powertools.tracing.tracer import Tracer

    if Tracer._is_tracer_disabled():
        return _Untraced()
    return cast(TracerLike, Tracer(service=SERVICE))


logger = Logger(service=SERVICE)
tracer: TracerLike = _tracer()
metrics = Metrics(namespace="KlingPipeline", service=SERVICE)
