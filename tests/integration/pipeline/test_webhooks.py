"""End-user webhooks through the local stack: a real receiver on 127.0.0.1, real SQS delays (moto), the
webhook function fed by the stack's queue consumer, signatures checked with `standardwebhooks`.

The receivers listen on loopback, which §5 rule 12 forbids; each test here turns the local escape hatch
(`LOCAL_ALLOW_PRIVATE_WEBHOOKS=1`) on for itself, with a one-second retry schedule, and restores both after.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from kling_local.stack.runner import LocalStack
from kling_pipeline.config import reset_settings
from tests.integration.waiting import wait_for

from .conftest import wait_terminal

pytestmark = pytest.mark.integration

REQUEST = {"mode": "text-to-video", "prompt": "A lighthouse at dawn", "duration": 3}
SCHEDULE = "0,1,1"  # three attempts, a second apart (plus jitter and SQS's whole-second delays)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers POSTs with the scripted statuses (then `default`); records headers and raw bodies."""

    def __init__(self, statuses: list[int] | None = None, *, default: int = 200, location: str = "") -> None:
        self.requests: list[Received] = []
        self.statuses = list(statuses or [])
        self.default, self.location = default, location
        receiver, lock = self, threading.Lock()
        self._lock = lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    receiver.requests.append(Received(dict(self.headers), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                self.send_response(status)
                if receiver.location:
                    self.send_header("location", receiver.location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/hook"

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local flag and a fast schedule for this test only (handlers run in this process)."""
    monkeypatch.setenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", "1")
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE_S", SCHEDULE)
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.close()


def start(receivers: list[Receiver], *args: Any, **kwargs: Any) -> Receiver:
    receiver = Receiver(*args, **kwargs)
    receivers.append(receiver)
    return receiver


def submit(api: httpx.Client, webhook_url: str) -> dict[str, Any]:
    response = api.post("/v1/generations", json={**REQUEST, "webhook_url": webhook_url})
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(api: httpx.Client, generation_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/generations/{generation_id}/deliveries")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def deliveries_when(
    api: httpx.Client, generation_id: str, ready: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        items = deliveries(api, generation_id)
        return items if items and ready(items) else None

    found: list[dict[str, Any]] = wait_for(check, timeout=60)
    return found


def test_retried_until_delivered_with_one_webhook_id_and_valid_signatures(
    webhook_env: None, sim: Any, api: httpx.Client, receivers: list[Receiver]
) -> None:
    # Given a receiver that fails twice, then accepts
    receiver = start(receivers, [500, 500, 200])
    # When a generation with that webhook_url succeeds
    generation = submit(api, receiver.url)
    assert wait_terminal(api, generation["id"])["status"] == "succeeded"
    wait_for(lambda: receiver.count() >= 3, timeout=60)
    # Then three attempts arrived, all with the same webhook-id, each signed with the tenant's secret
    secret = api.get("/v1/webhooks/secret").json()["secret"]
    assert secret.startswith("whsec_")
    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert ids == {f"msg_{generation['id']}_succeeded"}
    payloads = [Webhook(secret).verify(request.body, request.headers) for request in receiver.requests]
    assert {payload["type"] for payload in payloads} == {"generation.succeeded"}
    assert payloads[-1]["data"]["id"] == generation["id"]
    assert httpx.get(payloads[-1]["data"]["outputs"][0]["url"], timeout=30).status_code == 200
    # And the deliveries list shows them, newest first
    listed = deliveries_when(api, generation["id"], lambda items: len(items) >= 3)
    assert [(item["attempt"], item["outcome"], item["status_code"]) for item in listed] == [
        (3, "delivered", 200),
        (2, "failed", 500),
        (1, "failed", 500),
    ]
    # And nothing more is sent
    time.sleep(2.5)
    assert receiver.count() == 3


def test_redeliver_sends_the_same_message_again(
    webhook_env: None, sim: Any, api: httpx.Client, api_b: httpx.Client, receivers: list[Receiver]
) -> None:
    receiver = start(receivers)
    generation = submit(api, receiver.url)
    wait_terminal(api, generation["id"])
    wait_for(lambda: receiver.count() >= 1, timeout=60)
    # Another tenant can neither see nor redeliver it
    assert api_b.get(f"/v1/generations/{generation['id']}/deliveries").status_code == 404
    assert api_b.post(f"/v1/generations/{generation['id']}/deliveries/redeliver").status_code == 404
    response = api.post(f"/v1/generations/{generation['id']}/deliveries/redeliver")
    assert response.status_code == 202, response.text
    assert response.json()["sequence"] == 2
    wait_for(lambda: receiver.count() >= 2, timeout=30)
    first, again = receiver.requests[:2]
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert json.loads(first.body)["timestamp"] == json.loads(again.body)["timestamp"]
    secret = api.get("/v1/webhooks/secret").json()["secret"]
    Webhook(secret).verify(again.body, again.headers)
    assert api_b.get("/v1/webhooks/secret").json()["secret"] != secret


def test_410_stops_deliveries(
    webhook_env: None, sim: Any, api: httpx.Client, receivers: list[Receiver]
) -> None:
    receiver = start(receivers, default=410)
    generation = submit(api, receiver.url)
    wait_terminal(api, generation["id"])
    wait_for(lambda: receiver.count() >= 1, timeout=60)
    time.sleep(3.5)  # longer than the whole retry schedule
    assert receiver.count() == 1
    (attempt,) = deliveries(api, generation["id"])
    assert (attempt["outcome"], attempt["status_code"], attempt["next_retry_at"]) == ("gone", 410, None)


def test_redirects_are_not_followed(
    webhook_env: None, sim: Any, api: httpx.Client, receivers: list[Receiver]
) -> None:
    target = start(receivers)
    redirecting = start(receivers, default=302, location=target.url)
    generation = submit(api, redirecting.url)
    wait_terminal(api, generation["id"])
    # Every attempt is a failure; after the last one the delivery is dead-lettered
    listed = deliveries_when(api, generation["id"], lambda items: items[0]["dead_lettered"])
    assert [item["status_code"] for item in listed] == [302, 302, 302]
    assert redirecting.count() == 3
    assert target.count() == 0


def test_a_private_webhook_url_is_refused_at_submit_without_the_local_flag(
    stack: LocalStack, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_ALLOW_PRIVATE_WEBHOOKS", "0")
    reset_settings()
    try:
        response = api.post("/v1/generations", json={**REQUEST, "webhook_url": "https://10.0.0.1/hook"})
    finally:
        monkeypatch.undo()
        reset_settings()
    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["error"]["details"]] == ["webhook_url"]
