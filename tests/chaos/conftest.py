"""An AWS endpoint (`kling-pipeline aws`) in its own process, as the durable state that outlives stacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kling_local.chaos.processes import AwsEndpointProcess


@pytest.fixture(scope="package")
def aws_endpoint() -> Iterator[str]:
    with AwsEndpointProcess() as endpoint:
        yield endpoint.url
