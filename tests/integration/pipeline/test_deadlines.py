"""Per-request deadlines and the announcement of every final state, through the local stack (tenant D:
its generations carry loopback webhook URLs, valid only while the local escape hatch is on).

A real webhook receiver on 127.0.0.1 (the local escape hatch for private webhook URLs is turned on for
these tests only) and a real EventBridge rule on the stack's bus whose target is an SQS queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kling_local.stack.runner import LocalStack
from kling_pipeline.config import reset_settings
from tests.integration.conftest import CallbackReceiver
from tests.integration.waiting import wait_for

from .conftest import wait_terminal

BODY: dict[str, Any] = {"mode": "text-to-video", "duration": 5, "aspect_ratio": "16:9"}


@pytest.fixture
def private_webhooks(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", "1")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def announced(
    receiver: CallbackReceiver, bus: Callable[[], list[dict[str, Any]]], generation_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The webhook body and the bus event for `generation_id`, once both have arrived."""

    def both() -> tuple[dict[str, Any], dict[str, Any]] | None:
        hooks = [b for b in receiver.bodies if b.get("data", {}).get("id") == generation_id]
        events = [e for e in bus() if e.get("detail", {}).get("id") == generation_id]
        return (hooks[0], events[0]) if hooks and events else None

    found: tuple[dict[str, Any], dict[str, Any]] = wait_for(both, timeout=30)
    return found


def test_cancel_is_announced_by_webhook_and_on_the_bus(
    sim: Any,
    api_d: httpx.Client,
    private_webhooks: None,
    callback_receiver: CallbackReceiver,
    bus_listener: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given a running generation that asked for a webhook
    created = api_d.post(
        "/v1/generations",
        json={
            **BODY,
            "prompt": "Cancel me [sim:never]",
            "provider": "evolink",
            "webhook_url": callback_receiver.url,
        },
    ).json()
    # When it is canceled
    assert api_d.post(f"/v1/generations/{created['id']}/cancel").json()["status"] == "canceled"
    # Then the receiver gets generation.canceled and the rule's target gets "Generation Canceled"
    hook, event = announced(callback_receiver, bus_listener, created["id"])
    assert hook["type"] == "generation.canceled"
    assert hook["data"]["status"] == "canceled" and hook["data"]["error"]["code"] == "canceled"
    assert event["detail-type"] == "Generation Canceled"
    assert event["detail"]["actual_cost"]["usd"] == "0.0000"


def test_deadlines_fail_queued_and_running_generations_and_announce_the_timeout(
    sim: Any,
    api_d: httpx.Client,
    private_webhooks: None,
    callback_receiver: CallbackReceiver,
    bus_listener: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given Kling refusing every create (429: the generation waits in the queue) ...
    sim.config = sim.config.model_copy(update={"error_429_rate": {"kling": 1.0}})
    queued = api_d.post(
        "/v1/generations", json={**BODY, "prompt": "Never room", "provider": "kling", "deadline_s": 30}
    ).json()
    assert queued["status"] == "queued"
    # ... and an EvoLink task that never finishes
    running = api_d.post(
        "/v1/generations",
        json={
            **BODY,
            "prompt": "Forever [sim:never]",
            "provider": "evolink",
            "deadline_s": 30,
            "webhook_url": callback_receiver.url,
        },
    ).json()
    assert running["status"] == "submitted"
    # When their 30-second deadlines pass
    queued_done = wait_terminal(api_d, queued["id"], timeout=60)
    running_done = wait_terminal(api_d, running["id"], timeout=60)
    # Then both failed with timeout; the queued one was never created anywhere ...
    assert (queued_done["status"], queued_done["error"]["code"]) == ("failed", "timeout")
    assert (running_done["status"], running_done["error"]["code"]) == ("failed", "timeout")
    kling_creates = [r for r in sim.requests("kling") if (r.get("json") or {}).get("prompt") == "Never room"]
    assert kling_creates and all(r["status"] == 429 for r in kling_creates)
    assert queued_done["provider_task_id"] is None
    # ... the running one was canceled at EvoLink ...
    task_id = running_done["provider_task_id"]
    wait_for(lambda: any(r["path"] == f"/v1/tasks/{task_id}/cancel" for r in sim.requests("evolink")))
    assert next(t for t in sim.tasks("evolink") if t["task_id"] == task_id)["state"] == "failed"
    # ... and the timeout reached the webhook receiver and the bus as a failure
    hook, event = announced(callback_receiver, bus_listener, running["id"])
    assert hook["type"] == "generation.failed" and hook["data"]["error"]["code"] == "timeout"
    assert event["detail-type"] == "Generation Failed" and event["detail"]["error"]["code"] == "timeout"


def test_a_deadline_above_the_stack_setting_is_refused(api_d: httpx.Client) -> None:
    answer = api_d.post("/v1/generations", json={**BODY, "prompt": "Too patient", "deadline_s": 10_000})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "deadline_s"
    short = api_d.post("/v1/generations", json={**BODY, "prompt": "Too hasty", "deadline_s": 5})
    assert short.status_code == 422
    assert short.json()["error"]["details"][0]["field"] == "deadline_s"
