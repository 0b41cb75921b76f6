"""Connections to URLs we did not choose go to the address that was checked (issue 11, item 3: DNS rebinding).

DNS is replaced by a stub (`socket.getaddrinfo`, which both the guard and the socket layer use), so a name
can answer with a public address for the check and a private one a moment later: the rebinding attack.
The "private" side is a real listener on 127.0.0.1 that counts the connections it accepts.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from kling_pipeline import netguard
from kling_pipeline.caches import reset_caches
from kling_pipeline.services.download import DownloadFailed, open_download

PUBLIC = "93.184.216.34"
_real_getaddrinfo = socket.getaddrinfo


class Listener:
    """A TCP listener on loopback that only counts and closes connections (and answers plain HTTP)."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.hosts.append(self.headers["host"])
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                self.do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.accepted = 0
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        original = self.server.get_request

        def counting() -> Any:
            self.accepted += 1
            return original()

        self.server.get_request = counting  # type: ignore[method-assign]
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.server.shutdown()


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """`name -> [first answer, later answers...]`; the last answer repeats. Returns the names asked for."""
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in answers:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        asked.append(name)
        queue = answers[name]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def no_local_switches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("LOCAL_ALLOW_HTTP_LOOPBACK", "LOCAL_ALLOW_PRIVATE_WEBHOOKS"):
        monkeypatch.delenv(name, raising=False)
    reset_caches()
    yield
    reset_caches()


@pytest.mark.usefixtures("no_local_switches")
def test_a_name_rebound_to_loopback_after_the_check_is_never_connected(
    monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    # Given a name that answers public for the check, then 127.0.0.1 (where something listens)
    fake_dns(monkeypatch, {"rebind.test": [PUBLIC, "127.0.0.1"]})
    url = f"https://rebind.test:{listener.port}/hook"
    netguard.check_url(url)  # the check sees the public address

    # When the pinned client connects
    with netguard.guarded_client(timeout=2.0) as client, pytest.raises(httpx.HTTPError):
        client.post(url, content=b"{}")

    # Then nothing on loopback was ever reached
    assert listener.accepted == 0


@pytest.mark.usefixtures("no_local_switches")
def test_a_download_rebound_to_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    fake_dns(monkeypatch, {"cdn.rebind.test": [PUBLIC, "127.0.0.1"]})

    with pytest.raises(DownloadFailed), open_download(f"https://cdn.rebind.test:{listener.port}/v.mp4"):
        pass

    assert listener.accepted == 0


def test_a_pinned_connection_keeps_the_name_in_the_host_header(
    monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    # Given the local stack's switch (http to loopback) and a name served on loopback
    monkeypatch.setenv("LOCAL_ALLOW_HTTP_LOOPBACK", "1")
    reset_caches()
    asked = fake_dns(monkeypatch, {"media.local.test": ["127.0.0.1"]})
    try:
        with netguard.guarded_client(timeout=2.0) as client:
            response = client.get(f"http://media.local.test:{listener.port}/a.png")
    finally:
        reset_caches()

    # Then the request reached the address that was checked, still addressed to the name
    assert response.status_code == 404
    assert listener.hosts == [f"media.local.test:{listener.port}"]
    assert asked  # resolved by the guard, not behind its back
