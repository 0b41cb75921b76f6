"""A local stack whose only provider is Kling with two accounts of two slots each (admission control).

Timing knobs are seconds: a task takes `TASK_S` at the simulator, a throttled account backs off for 1 s,
a queued generation's timer fires after 1-2 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kling_local.simulator.config import SimAccount, SimConfig
from kling_local.stack.runner import LocalStack

KEY_A, KEY_B = "key-a", "key-b"
TASK_S = 1.5
SLOTS = 2
ACCOUNTS = [
    SimAccount(provider="kling", name="a", key="ak-a", secret="sk-a-" + "x" * 32, concurrency=SLOTS),
    SimAccount(provider="kling", name="b", key="ak-b", secret="sk-b-" + "x" * 32, concurrency=SLOTS),
]
SIM = {"generation_time_s": TASK_S, "seed": 8}


@pytest.fixture(scope="package")
def stack() -> Iterator[LocalStack]:
    env = {
        "LOCAL_API_KEYS": f"{KEY_A}=tenant-a,{KEY_B}=tenant-b",
        "FALLBACK_FIRST_POLL_S": "2",
        "FALLBACK_MAX_INTERVAL_S": "2",
        "TASK_DEADLINE_S": "120",
        "SUBMIT_RETRY_BASE_S": "1",
        "SUBMIT_RETRY_MAX_S": "2",
        "ACCOUNT_BACKOFF_S": "1",
        # Kling only: the two gateways are switched off, so every task lands on account a or b.
        "EVOLINK_API_KEY": "",
        "KLING3API_API_KEY": "",
    }
    with LocalStack(
        api_port=0,
        aws_port=0,
        simulator=True,
        simulator_port=0,
        simulator_config=SimConfig(**SIM),
        simulator_accounts=ACCOUNTS,
        env_overrides=env,
    ) as running:
        yield running


@pytest.fixture
def sim(stack: LocalStack) -> Iterator[Any]:
    simulator = stack.simulator
    assert simulator is not None
    simulator.config = SimConfig(**SIM)
    simulator.reset_stats()
    yield simulator
    simulator.config = SimConfig(**SIM)


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, headers={"x-api-key": KEY_A}, timeout=60) as client:
        yield client


@pytest.fixture
def api_b(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, headers={"x-api-key": KEY_B}, timeout=60) as client:
        yield client
