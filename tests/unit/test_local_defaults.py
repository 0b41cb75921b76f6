"""The local stack's webhook story works out of the box (issue 11, "smaller things"): a receiver on
http://127.0.0.1 is admitted, and the signing secret is the same on every start, so a receiver configured
once keeps verifying after a restart."""

from __future__ import annotations

import json

import pytest

from kling_local.stack.environment import stack_environment, webhook_secret_value


def _environment() -> dict[str, str]:
    return stack_environment(
        {},
        aws_endpoint_url="http://127.0.0.1:5000",
        region="us-east-1",
        front_door_url="http://127.0.0.1:8000",
        simulator_env=None,
        overrides={},
    )


def test_the_local_stack_admits_a_receiver_on_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    assert _environment()["LOCAL_ALLOW_PRIVATE_WEBHOOKS"] == "1"

    monkeypatch.setenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", "0")  # a user who wants the deployed behaviour
    assert _environment()["LOCAL_ALLOW_PRIVATE_WEBHOOKS"] == "0"


def test_the_local_webhook_secret_is_stable_and_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WEBHOOK_SIGNING_SECRET", raising=False)
    first, second = webhook_secret_value(), webhook_secret_value()
    assert first == second
    assert json.loads(first)["WEBHOOK_SIGNING_SECRET"].isalnum()

    monkeypatch.setenv("LOCAL_WEBHOOK_SIGNING_SECRET", "MyOwnLocalKey0123456789")
    assert json.loads(webhook_secret_value()) == {"WEBHOOK_SIGNING_SECRET": "MyOwnLocalKey0123456789"}
