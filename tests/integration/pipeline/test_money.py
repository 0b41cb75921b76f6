"""Money through the local stack: never a second paid task, failover only when nothing was created, and
one USD ledger on every provider.

Tasks are counted at the simulator across all three providers. In this stack EvoLink is the cheapest for
the request below, then Kling, then kling3api (no USD per credit configured: ranked last); a provider is
made the router's first choice by having the cheaper ones refuse with 429 (a refusal that proves no task
was created, so the router must still fail over past them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kling_local.stack.runner import LocalStack

from .conftest import wait_terminal

BODY: dict[str, Any] = {"mode": "text-to-video", "duration": 5, "aspect_ratio": "16:9", "quality": "720p"}
CHEAPEST_FIRST = ("evolink", "kling", "kling3api")
UNITS = {"evolink": "evolink_credits", "kling": "kling_units", "kling3api": "kling3api_credits"}
AMOUNT = re.compile(r"^-?[0-9]+\.[0-9]{4}$")


class TaskCounter:
    """Tasks the simulator created since the counter started, per provider."""

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._before = {task["task_id"] for task in sim.tasks()}

    def new(self) -> dict[str, int]:
        counts = dict.fromkeys(CHEAPEST_FIRST, 0)
        for task in self._sim.tasks():
            if task["task_id"] not in self._before and task["kind"] == "video":
                counts[task["provider"]] += 1
        return counts


@pytest.fixture
def counter(sim: Any) -> Iterator[TaskCounter]:
    yield TaskCounter(sim)


def refuse_cheaper_than(sim: Any, provider: str) -> None:
    """The providers ranked before `provider` answer every create with 429 (provably nothing created)."""
    cheaper = CHEAPEST_FIRST[: CHEAPEST_FIRST.index(provider)]
    sim.config = sim.config.model_copy(update={"error_429_rate": dict.fromkeys(cheaper, 1.0)})


def lose_the_next_create_answer(sim: Any) -> None:
    sim.config = sim.config.model_copy(update={"create_lost_response_count": 1})


# ---- at most one paid task per generation -----------------------------------------------------------------

LOST_ANSWER_OUTCOME = {
    # Kling is asked by our external_task_id and the task adopted; EvoLink's callback (to our per-generation
    # URL) names the task; kling3api offers neither, so the generation fails without going elsewhere.
    "kling": ("succeeded", None),
    "evolink": ("succeeded", None),
    "kling3api": ("failed", "create_unconfirmed"),
}


@pytest.mark.parametrize("failover", [True, False], ids=["failover-on", "pinned"])
@pytest.mark.parametrize("provider", CHEAPEST_FIRST)
def test_a_lost_create_answer_never_makes_a_second_paid_task(
    stack: LocalStack, sim: Any, api: httpx.Client, counter: TaskCounter, provider: str, failover: bool
) -> None:
    # Given the provider creates the task but its answer is lost (HTTP 500 after the create)
    lose_the_next_create_answer(sim)
    body = {**BODY, "prompt": f"Lost answer at {provider}"}
    if failover:
        refuse_cheaper_than(sim, provider)  # the router reaches it by failing over past refusals
    else:
        body["provider"] = provider
    # When a generation is created
    created = api.post("/v1/generations", json=body)
    assert created.status_code == 202, created.text
    done = wait_terminal(api, created.json()["id"], timeout=45)
    # Then exactly one task exists, at that provider, across all three
    assert counter.new() == {name: int(name == provider) for name in CHEAPEST_FIRST}
    status, code = LOST_ANSWER_OUTCOME[provider]
    assert done["status"] == status, done
    assert (done["error"] or {}).get("code") == code
    # And the money follows the provider that has the task
    assert done["estimated_cost"]["provider"] == provider
    assert done["actual_cost"]["unit"] == UNITS[provider]
    if provider == "kling3api":
        # Never findable, maybe charged: counted at the estimate rather than silently as free
        assert done["actual_cost"]["basis"] == "assumed_charged"
        assert done["actual_cost"]["usd"] == done["estimated_cost"]["usd"]


def test_failover_on_refusals_lands_on_the_next_cheapest_with_its_estimate(
    stack: LocalStack, sim: Any, api: httpx.Client, counter: TaskCounter
) -> None:
    # Given EvoLink, the cheapest, refuses with 429 (nothing created)
    refuse_cheaper_than(sim, "kling")
    quote = api.post("/v1/estimates", json={**BODY, "prompt": "Failover"}).json()
    kling_usd = next(q["usd"] for q in quote["quotes"] if q["provider"] == "kling")
    # When a generation is created
    created = api.post("/v1/generations", json={**BODY, "prompt": "Failover"}).json()
    done = wait_terminal(api, created["id"])
    # Then Kling ran it, and the estimate is Kling's price, not EvoLink's
    assert (done["status"], done["provider"]) == ("succeeded", "kling")
    assert done["estimated_cost"] == {"usd": kling_usd, "provider": "kling"}
    assert counter.new() == {"evolink": 0, "kling": 1, "kling3api": 0}


# ---- one USD ledger -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", CHEAPEST_FIRST)
def test_every_provider_reports_actual_cost_in_usd_with_its_own_units(
    stack: LocalStack, sim: Any, api: httpx.Client, provider: str
) -> None:
    created = api.post("/v1/generations", json={**BODY, "prompt": "Ledger", "provider": provider}).json()
    assert AMOUNT.match(created["estimated_cost"]["usd"])
    done = wait_terminal(api, created["id"])
    assert done["status"] == "succeeded"
    cost = done["actual_cost"]
    assert cost["unit"] == UNITS[provider] and cost["basis"] == "reported"
    assert AMOUNT.match(cost["usd"]) and AMOUNT.match(cost["units"])
    assert Decimal(cost["usd"]) > 0


def test_a_failed_evolink_task_costs_nothing(stack: LocalStack, sim: Any, api: httpx.Client) -> None:
    created = api.post(
        "/v1/generations", json={**BODY, "prompt": "Doomed [sim:fail]", "provider": "evolink"}
    ).json()
    done = wait_terminal(api, created["id"])
    assert done["status"] == "failed"
    assert done["actual_cost"]["usd"] == "0.0000"
