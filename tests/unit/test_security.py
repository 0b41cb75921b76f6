"""The audit's security findings (issue 11), each pinned by the behaviour an attacker or a user would see.

Every test here failed before its fix: address checks that let IPv4-embedding IPv6 forms through, media
URLs aimed at internal hosts, a video probe that could be made to issue a million ranged GETs, callback
tokens that crashed on non-ASCII or were accepted at another provider's route, JSON nested deep enough to
crash the parser.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.media import BytesReader, RangeReader, probe_video
from kling_pipeline.domain.media.video import MAX_VIDEO_BYTES
from kling_pipeline.domain.validation import is_forbidden_ip, media_url_issue, webhook_url_issue
from kling_pipeline.errors import InvalidInput

Event = Callable[[str], dict[str, Any]]

# ---- item 4: IPv6 forms that embed an IPv4 address -------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",  # IPv4-compatible (deprecated, still routed by some stacks)
        "::169.254.169.254",
        "::ffff:0:127.0.0.1",  # IPv4-translated (SIIT)
        "::ffff:0:10.0.0.1",
        "64:ff9b::a9fe:a9fe",  # well-known NAT64 prefix → 169.254.169.254
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 prefix (RFC 8215)
        "64:ff9b:1:ffff::1",
        "::ffff:127.0.0.1",  # IPv4-mapped, already refused before
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1, already refused before
    ],
)
def test_ipv6_forms_embedding_a_private_ipv4_address_are_refused(address: str) -> None:
    assert is_forbidden_ip(ipaddress.ip_address(address))
    assert webhook_url_issue(f"https://[{address}]/hook") is not None


@pytest.mark.parametrize("address", ["2606:4700::1111", "::ffff:0:8.8.8.8", "64:ff9b::808:808"])
def test_ipv6_forms_of_public_addresses_stay_allowed(address: str) -> None:
    assert not is_forbidden_ip(ipaddress.ip_address(address))


# ---- item 5: media URLs aimed at internal hosts ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/x.png",
        "https://127.1/a.png",
        "https://10.0.0.8/a.png",
        "https://[::ffff:169.254.169.254]/a.png",
        "https://localhost/a.png",
        "https://metadata.google.internal/a.png",
        "https://intranet/a.png",
        "https://user:pw@cdn.example.com/a.png",
    ],
)
def test_media_urls_to_internal_hosts_are_refused(url: str) -> None:
    assert media_url_issue(url, frozenset({"png"})) is not None


def test_media_urls_to_public_hosts_and_own_objects_are_accepted() -> None:
    assert media_url_issue("https://cdn.example.com/a.png", frozenset({"png"})) is None
    assert media_url_issue("https://8.8.8.8/a.png", frozenset({"png"})) is None
    assert media_url_issue("s3://my-bucket/inputs/t/a.png", frozenset({"png"})) is None


def test_plain_http_loopback_media_is_accepted_only_when_the_local_switch_is_on() -> None:
    url = "http://127.0.0.1:8000/a.png"
    assert media_url_issue(url, frozenset({"png"})) is not None
    assert media_url_issue(url, frozenset({"png"}), allow_http_loopback=True) is None
    assert media_url_issue("http://10.0.0.1/a.png", frozenset({"png"}), allow_http_loopback=True) is not None
    assert media_url_issue("http://cdn.example.com/a.png", frozenset({"png"}), allow_http_loopback=True)


def test_an_api_request_with_an_internal_media_url_gets_a_field_error(
    event: Event, lambda_context: Any
) -> None:
    from functions.api.app import lambda_handler

    request = event("api/create_estimate")
    request["body"] = json.dumps(
        {"mode": "image-to-video", "first_frame": "https://169.254.169.254/latest/x.png"}
    )
    response = lambda_handler(request, lambda_context)

    assert response["statusCode"] == 422
    body = json.loads(response["body"])
    assert [detail["field"] for detail in body["error"]["details"]] == ["first_frame"]


# ---- item 1: the video probe is bounded ------------------------------------------------------------------


class CountingReader:
    """Counts the ranged reads a probe makes: each one is a GET against S3 or a web server."""

    def __init__(self, inner: RangeReader) -> None:
        self.inner = inner
        self.reads = 0
        self.bytes = 0

    @property
    def size(self) -> int:
        return self.inner.size

    def read(self, offset: int, length: int) -> bytes:
        self.reads += 1
        data = self.inner.read(offset, length)
        self.bytes += len(data)
        return data


def test_a_file_of_tiny_boxes_costs_a_bounded_number_of_reads() -> None:
    # Given a 10 MiB "MP4": an ftyp box followed by 8-byte free boxes to the end (1.3 M boxes)
    ftyp = b"\x00\x00\x00\x10ftypisom\x00\x00\x02\x00"
    data = ftyp + b"\x00\x00\x00\x08free" * ((10 * 1024 * 1024 - len(ftyp)) // 8)
    reader = CountingReader(BytesReader(data))

    with pytest.raises(InvalidInput) as raised:
        probe_video(reader, field="video.url")

    assert reader.reads <= 70
    assert reader.bytes <= 2048
    assert raised.value.details[0].field == "video.url"
    assert "boxes" in raised.value.details[0].issue


class HugeReader:
    """A reader that claims an enormous size and must never be read."""

    size = MAX_VIDEO_BYTES + 1

    def read(self, offset: int, length: int) -> bytes:
        raise AssertionError("an oversized video must be refused before any read")


def test_an_oversized_video_is_refused_before_any_read() -> None:
    with pytest.raises(InvalidInput) as raised:
        probe_video(HugeReader(), field="video.url")

    assert "200 MB" in raised.value.details[0].issue


# ---- items 11 and 12: callback tokens --------------------------------------------------------------------


@pytest.fixture
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "callback-secret-for-tests")
    reset_caches()
    yield
    reset_caches()


def _callback(event: Event, context: Any, provider: str, generation_id: str, token: str) -> int:
    from functions.callback.app import lambda_handler

    request = event("callback/kling_succeeded")
    request["path"] = f"/v1/callbacks/{provider}/{generation_id}"
    request["pathParameters"] = {"provider": provider, "id": generation_id}
    request["queryStringParameters"] = {"token": token}
    request["multiValueQueryStringParameters"] = {"token": [token]}
    response = lambda_handler(request, context)
    assert "Traceback" not in response["body"]
    return int(response["statusCode"])


@pytest.mark.usefixtures("signing_secret")
@pytest.mark.parametrize("token", ["ünïcödé", "tök€n", "\udcff"])
def test_a_non_ascii_callback_token_is_a_401(event: Event, lambda_context: Any, token: str) -> None:
    assert _callback(event, lambda_context, "kling", "gen_abc", token) == 401


@pytest.mark.usefixtures("signing_secret")
def test_a_callback_token_is_bound_to_its_provider(event: Event, lambda_context: Any) -> None:
    from kling_pipeline.services.tokens import callback_token, verify_callback_token

    token = callback_token("gen_abc", "kling")

    assert verify_callback_token("gen_abc", "kling", token)
    assert not verify_callback_token("gen_abc", "evolink", token)
    assert not verify_callback_token("gen_other", "kling", token)
    assert _callback(event, lambda_context, "evolink", "gen_abc", token) == 401


# ---- item 11: deeply nested JSON -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_deeply_nested_json_answers_400_not_500(event: Event, lambda_context: Any, depth: int) -> None:
    from functions.api.app import lambda_handler

    request = event("api/create_generation")
    request["body"] = '{"mode": "text-to-video", "metadata": ' + "[" * depth + "]" * depth + "}"
    response = lambda_handler(request, lambda_context)
    body = json.loads(response["body"])

    assert response["statusCode"] == 400, body
    assert body["error"]["code"] == "invalid_json"
    assert "nested" in body["error"]["message"]
