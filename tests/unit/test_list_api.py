"""`GET /v1/generations` as users expect it (issue 11, "smaller things"): the filters they reach for
(status, mode, provider, created range), unknown query parameters refused instead of silently ignored
(`?mode=` used to return everything), and a `next_cursor` that is opaque yet still only works for the
tenant it was issued to."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kling_pipeline.caches import reset_caches
from kling_pipeline.domain.request import Mode, parse_generation_request
from kling_pipeline.domain.status import Status
from kling_pipeline.store.generations import get_generation_store

from .conftest import stored_generation

Event = Callable[[str], dict[str, Any]]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def listing(pipeline_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tenant-a: six generations an hour apart (modes, providers and statuses mixed); tenant-b: one."""
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "secret-for-list-tests")
    reset_caches()
    store = get_generation_store()
    kinds = [
        ("text-to-video", "kling", Status.SUCCEEDED),
        ("image-to-video", "evolink", Status.SUCCEEDED),
        ("text-to-video", "evolink", Status.FAILED),
        ("image-to-video", "kling", Status.PROCESSING),
        ("text-to-video", "kling3api", Status.SUCCEEDED),
        ("image-to-video", "kling", Status.SUCCEEDED),
    ]
    for index, (mode, provider, status) in enumerate(kinds):
        body: dict[str, Any] = {"mode": mode, "prompt": "x"}
        if mode == "image-to-video":
            body["first_frame"] = "s3://media/inputs/tenant-a/a.png"
        created = T0 + timedelta(hours=index)
        store.create(
            stored_generation(f"gen_a{index}", status=status).model_copy(
                update={
                    "mode": Mode(mode),
                    "provider": provider,
                    "request": parse_generation_request(body),
                    "created_at": created,
                    "updated_at": created,
                }
            )
        )
    store.create(stored_generation("gen_b0").model_copy(update={"tenant_id": "tenant-b"}))
    yield
    reset_caches()


def get(event: Event, context: Any, tenant: str = "tenant-a", **params: str) -> tuple[int, dict[str, Any]]:
    from functions.api.app import lambda_handler

    request = event("api/list_generations")
    request["queryStringParameters"] = params or None
    request["multiValueQueryStringParameters"] = {key: [value] for key, value in params.items()} or None
    request["requestContext"]["identity"]["apiKeyId"] = tenant
    response = lambda_handler(request, context)
    return int(response["statusCode"]), json.loads(response["body"])


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


@pytest.mark.usefixtures("listing")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["gen_a5", "gen_a4", "gen_a3", "gen_a2", "gen_a1", "gen_a0"]),
        ({"mode": "image-to-video"}, ["gen_a5", "gen_a3", "gen_a1"]),
        ({"provider": "kling"}, ["gen_a5", "gen_a3", "gen_a0"]),
        ({"status": "succeeded", "provider": "kling"}, ["gen_a5", "gen_a0"]),
        ({"created_after": "2026-11-01T14:00:00Z"}, ["gen_a5", "gen_a4", "gen_a3", "gen_a2"]),
        ({"created_before": "2026-11-01T14:00:00Z"}, ["gen_a1", "gen_a0"]),
        (
            {
                "created_after": "2026-11-01T13:00:00Z",
                "created_before": "2026-11-01T17:00:00Z",
                "mode": "text-to-video",
            },
            ["gen_a4", "gen_a2"],
        ),
    ],
)
def test_the_filters_users_expect(
    event: Event, lambda_context: Any, params: dict[str, str], expected: list[str]
) -> None:
    status, body = get(event, lambda_context, **params, limit="50")

    assert status == 200, body
    assert ids(body) == expected


@pytest.mark.usefixtures("listing")
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"mode": "bogus"}, "mode"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"provider": "acme"}, "provider"),
    ],
)
def test_unknown_or_bad_query_parameters_are_refused(
    event: Event, lambda_context: Any, params: dict[str, str], field: str
) -> None:
    status, body = get(event, lambda_context, **params)

    assert status == 422, body
    assert [detail["field"] for detail in body["error"]["details"]] == [field]


@pytest.mark.usefixtures("listing")
def test_the_cursor_is_opaque_pages_through_everything_and_is_bound_to_its_tenant(
    event: Event, lambda_context: Any
) -> None:
    status, first = get(event, lambda_context, limit="4")
    assert status == 200 and ids(first) == ["gen_a5", "gen_a4", "gen_a3", "gen_a2"]
    cursor = first["next_cursor"]

    # opaque: nothing of the table's key (tenant, ids, key names) can be read from it
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for secret in (b"tenant-a", b"gen_a", b"gsi1pk", b"TENANT", b"2026-11"):
        assert secret not in raw

    status, rest = get(event, lambda_context, limit="4", cursor=cursor)
    assert status == 200 and ids(rest) == ["gen_a1", "gen_a0"] and rest["next_cursor"] is None

    status, other = get(event, lambda_context, tenant="tenant-b", cursor=cursor)
    assert status == 422 and other["error"]["details"][0]["field"] == "cursor"

    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    status, bad = get(event, lambda_context, cursor=tampered)
    assert status == 422 and bad["error"]["details"][0]["field"] == "cursor"


@pytest.mark.usefixtures("listing")
def test_the_elements_list_refuses_unknown_parameters_too(event: Event, lambda_context: Any) -> None:
    from functions.api.app import lambda_handler

    request = event("api/list_generations")
    request["path"] = request["resource"] = "/v1/elements"
    request["queryStringParameters"] = {"status": "ready"}
    request["multiValueQueryStringParameters"] = {"status": ["ready"]}
    response = lambda_handler(request, lambda_context)

    assert response["statusCode"] == 422, response["body"]
    assert json.loads(response["body"])["error"]["details"][0]["field"] == "status"
