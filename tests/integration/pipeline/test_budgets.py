"""Tenant budgets through the local stack: the operator CLI sets a cap, creates reserve against it with one
conditional write, the final state settles it, and `GET /v1/usage` adds up to the generations' costs.

Tenant C (KEY_C in conftest) is used only here, so its month holds exactly what these tests made.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from kling_local import cli
from kling_local.stack.runner import LocalStack
from kling_pipeline.config import reset_settings
from tests.integration.waiting import wait_for

from .conftest import TENANT_C, put_requested, wait_terminal

BODY: dict[str, Any] = {"mode": "text-to-video", "duration": 5, "aspect_ratio": "16:9", "provider": "evolink"}


@pytest.fixture
def set_budget(stack: LocalStack, tmp_path: Path) -> Iterator[Callable[[str | None], dict[str, Any]]]:
    """`kling-pipeline tenants set-budget tenant-c …` against this stack (its state file); cleared after."""
    state_file = str(stack.write_state_file(tmp_path / "stack.json"))

    def run(monthly_usd: str | None) -> dict[str, Any]:
        amount = ["--clear"] if monthly_usd is None else ["--monthly-usd", monthly_usd]
        assert cli.main(["tenants", "set-budget", TENANT_C, *amount, "--state-file", state_file]) == 0
        return {"tenant": TENANT_C, "monthly_usd": monthly_usd}

    yield run
    run(None)


def usage(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/v1/usage")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_two_concurrent_creates_at_the_budget_edge_exactly_one_is_accepted(
    sim: Any, api_c: httpx.Client, set_budget: Callable[[str | None], dict[str, Any]]
) -> None:
    # Given a cap with room for one more generation, not two
    estimate = Decimal(api_c.post("/v1/estimates", json={**BODY, "prompt": "x"}).json()["quotes"][0]["usd"])
    before = usage(api_c)
    committed = Decimal(before["spent_usd"]) + Decimal(before["reserved_usd"])
    set_budget(str(committed + estimate + estimate / 2))
    run = uuid.uuid4().hex[:8]
    # When two creates race for the last dollars
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda n: api_c.post("/v1/generations", json={**BODY, "prompt": f"Edge {run} {n}"}), (1, 2)
            )
        )
    # Then exactly one is accepted, the other is refused with the figures
    assert sorted(a.status_code for a in answers) == [202, 402], [a.text for a in answers]
    accepted = next(a for a in answers if a.status_code == 202).json()
    refused = next(a for a in answers if a.status_code == 402).json()["error"]
    assert refused["code"] == "budget_exceeded"
    assert refused["details"] == {
        "month": before["month"],
        "budget_usd": f"{committed + estimate + estimate / 2:.4f}",
        "spent_usd": before["spent_usd"],
        "reserved_usd": f"{Decimal(before['reserved_usd']) + estimate:.4f}",
        "estimate_usd": f"{estimate:.4f}",
    }
    # And nothing of the refused one was submitted or written
    refused_prompt = ({f"Edge {run} 1", f"Edge {run} 2"} - {accepted["request"]["prompt"]}).pop()
    assert [r for r in sim.requests() if (r.get("json") or {}).get("prompt") == refused_prompt] == []
    listed = api_c.get("/v1/generations?limit=100").json()["items"]
    assert [g for g in listed if g["request"]["prompt"] == refused_prompt] == []
    assert usage(api_c)["counts"]["created"] == before["counts"].get("created", 0) + 1
    wait_terminal(api_c, accepted["id"])


def test_usage_totals_equal_the_sum_of_actual_costs(sim: Any, api_c: httpx.Client) -> None:
    # Given generations at every provider, one of them failing and one canceled
    bodies = [
        {**BODY, "prompt": "Usage evolink"},
        {**BODY, "prompt": "Usage kling", "provider": "kling"},
        {**BODY, "prompt": "Usage kling3api", "provider": "kling3api"},
        {**BODY, "prompt": "Usage failed [sim:fail]"},
        {**BODY, "prompt": "Usage canceled [sim:never]"},
    ]
    ids = [api_c.post("/v1/generations", json=body).json()["id"] for body in bodies]
    api_c.post(f"/v1/generations/{ids[-1]}/cancel")
    for generation_id in ids:
        wait_terminal(api_c, generation_id)
    # When the month's usage is read (settlement follows the final state within moments)
    items = api_c.get("/v1/generations?limit=100").json()["items"]
    month = usage(api_c)["month"]
    mine = [g for g in items if g["created_at"].startswith(month)]
    assert all(g["status"] in {"succeeded", "failed", "canceled"} for g in mine)
    total = sum((Decimal(g["actual_cost"]["usd"]) for g in mine), Decimal(0))
    settled = wait_for(lambda: (u := usage(api_c))["reserved_usd"] == "0.0000" and u, timeout=20)
    # Then spent is the sum of the actual costs, nothing stays reserved, and the breakdowns add up
    assert settled["spent_usd"] == f"{total:.4f}"
    by_provider = sum((Decimal(b["spent_usd"]) for b in settled["by_provider"].values()), Decimal(0))
    by_mode = sum((Decimal(b["spent_usd"]) for b in settled["by_mode"].values()), Decimal(0))
    assert by_provider == by_mode == total
    assert set(settled["by_provider"]) >= {"evolink", "kling", "kling3api"}
    assert settled["counts"]["canceled"] >= 1 and settled["counts"]["failed"] >= 1
    assert sum(
        settled["counts"][s] for s in ("succeeded", "failed", "canceled") if s in settled["counts"]
    ) == len(mine)
    past = api_c.get("/v1/usage?month=2001-01").json()
    assert (past["spent_usd"], past["counts"]) == ("0.0000", {})
    assert api_c.get("/v1/usage?month=2026-13").status_code == 422


def test_an_eventbridge_request_over_budget_is_rejected(
    stack: LocalStack,
    sim: Any,
    set_budget: Callable[[str | None], dict[str, Any]],
    bus_listener: Callable[[], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the default event source acting for tenant C, whose budget is zero
    monkeypatch.setenv("EVENT_SOURCE_TENANTS", f"kling-pipeline.requests={TENANT_C}")
    reset_settings()
    set_budget("0")
    run = uuid.uuid4().hex
    put_requested(stack, {"tenant_id": TENANT_C, **BODY, "prompt": "Over budget", "metadata": {"run": run}})

    def rejected() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in bus_listener()
                if e["detail-type"] == "Generation Request Rejected"
                and (e["detail"].get("metadata") or {}).get("run") == run
            ),
            None,
        )

    error = wait_for(rejected, timeout=30)["detail"]["error"]
    assert error["code"] == "budget_exceeded"
    assert error["details"]["budget_usd"] == "0.0000"
    assert [r for r in sim.requests() if (r.get("json") or {}).get("prompt") == "Over budget"] == []
    monkeypatch.undo()
    reset_settings()
