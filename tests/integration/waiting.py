"""Polling for eventually-true conditions: the pipeline is asynchronous end to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], *, timeout: float = 60, every: float = 0.3) -> Any:
    """The first truthy value of `check()`, or AssertionError with the last value after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(every)
