"""Custom elements: create at every element provider, refresh until ready, ownership, delete, the API routes,
and generations that name elements (resolved before any provider call, each provider given its own ids).

Provider HTTP is mocked with respx; DynamoDB and S3 are moto, the table built from template.yaml.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import boto3
import pytest
import respx
from moto import mock_aws

from kling_local.samples import png
from kling_local.stack.template import DYNAMODB_TABLE, Template
from kling_pipeline import netguard
from kling_pipeline.caches import reset_caches
from kling_pipeline.config import reset_settings
from kling_pipeline.domain.element import ElementStatus, parse_element_request
from kling_pipeline.domain.request import parse_generation_request
from kling_pipeline.errors import InvalidInput, NoProviderAvailable, NotFound, ProviderError
from kling_pipeline.providers import registry
from kling_pipeline.providers.http import NO_WAIT_RETRY
from kling_pipeline.services import elements as svc
from kling_pipeline.services import generations
from kling_pipeline.store.generations import get_generation_store

ROOT = Path(__file__).resolve().parents[2]
KLING = "https://kling.test"
EVOLINK = "https://evolink.test"
K3 = "https://k3.test"
TABLE = "kling-generations-test"
BUCKET = "kling-media-test"
IMG = [f"https://cdn.example.com/hero-{n}.png" for n in range(4)]
BODY = {"name": "Hero", "description": "our mascot", "frontal_image": IMG[0], "reference_images": IMG[1:3]}

KLING_CREATE = f"{KLING}/v1/general/advanced-custom-elements"
KLING_DELETE = f"{KLING}/v1/general/delete-elements"
EVO_CREATE = f"{EVOLINK}/v1/videos/generations"


def kling_ok(data: Any) -> dict[str, Any]:
    return {"code": 0, "message": "SUCCEED", "request_id": "r", "data": data}


def kling_element(task_id: str, status: str, element_id: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"task_id": task_id, "task_status": status, "task_status_msg": ""}
    if element_id is not None:
        data["task_result"] = {"elements": [{"element_id": element_id, "element_name": "Hero"}]}
    if status == "failed":
        data["task_status_msg"] = "face not detected"
    return kling_ok(data)


def evo_task(task_id: str, status: str, result: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": task_id, "status": status, "type": "element", "results": []}
    if result is not None:
        body["results"] = [result]
    if status == "failed":
        body["error"] = {"code": "invalid_image", "message": "image rejected"}
    return body


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[index].request.content)
    return body


@cache
def template_table() -> dict[str, Any]:
    """GenerationsTable's key schema and indexes, straight from template.yaml."""
    resource = Template.load(ROOT / "template.yaml").resources["GenerationsTable"]
    assert resource.type == DYNAMODB_TABLE
    props = resource.properties
    return {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"],
        "BillingMode": "PAY_PER_REQUEST",
    }


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Given kling, evolink and kling3api configured, and the template's table in moto."""
    env = {
        "KLING_API_BASE_URL": KLING,
        "KLING_ACCESS_KEY": "ak",
        "KLING_SECRET_KEY": "sk-long-enough-for-hs256-signing-0123456789",
        "EVOLINK_API_BASE_URL": EVOLINK,
        "EVOLINK_API_KEY": "evo",
        "KLING3API_BASE_URL": K3,
        "KLING3API_API_KEY": "k3",
        "GENERATIONS_TABLE": TABLE,
        "BUCKET_NAME": BUCKET,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "TASK_DEADLINE_S": "3600",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    real = registry.configured_accounts
    monkeypatch.setattr(
        registry, "configured_accounts", lambda settings, client: real(settings, client, retry=NO_WAIT_RETRY)
    )
    reset_caches()
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(TableName=TABLE, **template_table())
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield
    reset_caches()


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    """Provider routes are added by each test; the CDN serving IMG (probed before anything is spent) is
    here: cdn.example.com resolves to a public address and answers ranged GETs with a 1280x720 PNG."""
    monkeypatch.setattr(netguard, "_resolve", lambda host, port: [ip_address("93.184.216.34")])
    image = png(1280, 720)
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=r"^https://cdn\.example\.com/hero-\d\.png$").respond(
            206, headers={"content-range": f"bytes 0-{len(image) - 1}/{len(image)}"}, content=image
        )
        yield mock


@pytest.fixture
def created(stack: None, http: respx.MockRouter) -> dict[str, respx.Route]:
    """Both element providers accept the create; returns their create routes."""
    return {
        "kling": http.post(KLING_CREATE).respond(json=kling_element("kt_1", "submitted")),
        "evolink": http.post(EVO_CREATE).respond(json=evo_task("evo_el_1", "pending")),
    }


def progress(http: respx.MockRouter, *, kling: str, evolink: str) -> dict[str, respx.Route]:
    """The providers' answer to the next element query (call counts start again from zero)."""
    http.reset()
    kling_id = 900100 if kling == "succeed" else None
    evo_id = "700100" if evolink == "completed" else None
    return {
        "kling": http.get(f"{KLING_CREATE}/kt_1").respond(json=kling_element("kt_1", kling, kling_id)),
        "evolink": http.get(f"{EVOLINK}/v1/tasks/evo_el_1").respond(
            json=evo_task("evo_el_1", evolink, evo_id)
        ),
    }


def ready_element(http: respx.MockRouter, tenant: str = "tenant-a", **states: str) -> str:
    element = svc.create_element(BODY, tenant_id=tenant)
    progress(http, **{"kling": "succeed", "evolink": "completed", **states})
    svc.get_element(tenant, element.id)
    return element.id


# ---- create body -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "x" * 21}, "name"),
        ({"name": "   "}, "name"),
        ({"description": "d" * 101}, "description"),
        ({"frontal_image": "ftp://cdn.example.com/a.png"}, "frontal_image"),
        ({"frontal_image": "https://cdn.example.com/a.gif"}, "frontal_image"),
        ({"reference_images": []}, "reference_images"),
        ({"reference_images": IMG}, "reference_images"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_create_body_limits(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_element_request({**BODY, **change})
    assert [issue.field for issue in raised.value.details] == [field]


def test_s3_images_must_be_the_tenants_own_uploads(stack: None, http: respx.MockRouter) -> None:
    with pytest.raises(InvalidInput) as raised:
        svc.create_element(
            {**BODY, "frontal_image": f"s3://{BUCKET}/inputs/tenant-b/a.png"}, tenant_id="tenant-a"
        )
    assert raised.value.details[0].field == "frontal_image"
    assert [call.request.url.host for call in http.calls if call.request.url.host != "cdn.example.com"] == []


# ---- lifecycle ---------------------------------------------------------------------------------------------


def test_create_sends_the_element_to_every_element_provider(created: dict[str, respx.Route]) -> None:
    element = svc.create_element(BODY, tenant_id="tenant-a")

    assert element.id.startswith("elm_")
    assert element.status is ElementStatus.PROCESSING
    assert {name: record.status for name, record in element.providers.items()} == {
        "kling": "submitted",
        "evolink": "submitted",
    }  # kling3api has no elements
    assert sent(created["kling"]) == {
        "element_name": "Hero",
        "element_description": "our mascot",
        "reference_type": "image_refer",
        "element_image_list": {"frontal_image": IMG[0], "refer_images": [{"image_url": u} for u in IMG[1:3]]},
        "external_task_id": element.id,
    }
    assert sent(created["evolink"]) == {
        "model": "kling-custom-element",
        "element_name": "Hero",
        "element_description": "our mascot",
        "frontal_image_url": IMG[0],
        "reference_image_urls": IMG[1:3],
    }
    public = element.public()
    assert "tenant_id" not in public and public["ready_providers"] == []


def test_processing_until_a_provider_is_ready_then_ready(created: Any, http: respx.MockRouter) -> None:
    element = svc.create_element(BODY, tenant_id="tenant-a")

    # When the providers are still working, a read asks each once and it stays processing
    polls = progress(http, kling="processing", evolink="processing")
    still = svc.get_element("tenant-a", element.id)
    assert still.status is ElementStatus.PROCESSING
    assert (polls["kling"].call_count, polls["evolink"].call_count) == (1, 1)

    # When Kling is done, it is ready there (with Kling's own id) while EvoLink keeps working
    polls = progress(http, kling="succeed", evolink="processing")
    ready = svc.get_element("tenant-a", element.id)
    assert ready.status is ElementStatus.READY
    assert ready.ready_providers == ["kling"]
    assert ready.providers["kling"].element_id == "900100"

    # Then only the provider still working is asked again, once per read
    polls = progress(http, kling="succeed", evolink="completed")
    both = svc.get_element("tenant-a", element.id)
    assert (polls["kling"].call_count, polls["evolink"].call_count) == (0, 1)
    assert sorted(both.ready_providers) == ["evolink", "kling"]
    assert both.providers["evolink"].element_id == "700100"

    # And a settled element costs no provider call at all
    polls = progress(http, kling="succeed", evolink="completed")
    svc.get_element("tenant-a", element.id)
    svc.list_elements("tenant-a", limit=10, cursor=None)
    assert (polls["kling"].call_count, polls["evolink"].call_count) == (0, 0)


def test_failed_when_every_provider_failed(created: Any, http: respx.MockRouter) -> None:
    element = svc.create_element(BODY, tenant_id="tenant-a")
    progress(http, kling="failed", evolink="processing")
    assert svc.get_element("tenant-a", element.id).status is ElementStatus.PROCESSING

    progress(http, kling="failed", evolink="failed")
    failed = svc.get_element("tenant-a", element.id)
    assert failed.status is ElementStatus.FAILED
    assert failed.error is not None
    # the providers' own words ("face not detected") are logged, never shown: a fixed sentence per provider
    assert "face not detected" not in failed.error.message and "image rejected" not in failed.error.message
    assert failed.error.message == "; ".join(
        f"{name}: the provider could not create the element from these images"
        for name in ("kling", "evolink")
    )


def test_a_provider_down_on_read_changes_nothing(created: Any, http: respx.MockRouter) -> None:
    element = svc.create_element(BODY, tenant_id="tenant-a")
    http.get(f"{KLING_CREATE}/kt_1").respond(status_code=503, json={"code": 5001, "message": "busy"})
    http.get(f"{EVOLINK}/v1/tasks/evo_el_1").respond(status_code=502, json={"error": {"code": "x"}})

    again = svc.get_element("tenant-a", element.id)

    assert again.status is ElementStatus.PROCESSING
    assert {record.status for record in again.providers.values()} == {"submitted"}


def test_overdue_elements_fail_with_timeout(
    created: Any, http: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    element = svc.create_element(BODY, tenant_id="tenant-a")
    monkeypatch.setenv("TASK_DEADLINE_S", "1")
    reset_settings()
    monkeypatch.setattr(svc, "utcnow", lambda: element.created_at.replace(year=element.created_at.year + 1))
    progress(http, kling="processing", evolink="processing")

    timed_out = svc.get_element("tenant-a", element.id)

    assert timed_out.status is ElementStatus.FAILED
    assert timed_out.error is not None and timed_out.error.code == "timeout"


def test_one_provider_refusing_the_create_leaves_the_other(stack: None, http: respx.MockRouter) -> None:
    http.post(KLING_CREATE).respond(status_code=400, json={"code": 1201, "message": "bad image"})
    http.post(EVO_CREATE).respond(json=evo_task("evo_el_1", "pending"))

    element = svc.create_element(BODY, tenant_id="tenant-a")

    assert element.status is ElementStatus.PROCESSING
    assert element.providers["kling"].status == "failed"
    assert element.providers["kling"].error is not None
    assert element.providers["kling"].error.code == "bad_request"


def test_refused_everywhere_for_good_is_a_failed_element(stack: None, http: respx.MockRouter) -> None:
    http.post(KLING_CREATE).respond(status_code=400, json={"code": 1301, "message": "policy"})
    http.post(EVO_CREATE).respond(
        status_code=400, json={"error": {"code": "content_policy", "message": "no"}}
    )

    element = svc.create_element(BODY, tenant_id="tenant-a")

    assert element.status is ElementStatus.FAILED
    assert svc.get_element("tenant-a", element.id).status is ElementStatus.FAILED


def test_every_provider_down_raises_and_keeps_nothing(stack: None, http: respx.MockRouter) -> None:
    http.post(KLING_CREATE).respond(status_code=500, json={"code": 5000, "message": "down"})
    http.post(EVO_CREATE).respond(status_code=503, json={"error": {"code": "down", "message": "down"}})

    with pytest.raises(ProviderError):
        svc.create_element(BODY, tenant_id="tenant-a")

    assert svc.list_elements("tenant-a", limit=10, cursor=None).items == []


@pytest.mark.usefixtures("http")
def test_no_element_provider_enabled(stack: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KLING_ACCESS_KEY", "EVOLINK_API_KEY"):
        monkeypatch.delenv(name)
    reset_caches()
    with pytest.raises(NoProviderAvailable, match="custom elements"):
        svc.create_element(BODY, tenant_id="tenant-a")


# ---- ownership, list, delete ---------------------------------------------------------------------------


def test_another_tenant_sees_nothing(created: Any, http: respx.MockRouter) -> None:
    element_id = ready_element(http)

    with pytest.raises(NotFound):
        svc.get_element("tenant-b", element_id)
    with pytest.raises(NotFound):
        svc.delete_element("tenant-b", element_id)
    assert svc.list_elements("tenant-b", limit=10, cursor=None).items == []
    assert svc.get_element("tenant-a", element_id).status is ElementStatus.READY


def test_list_is_newest_first_with_a_cursor(created: Any, http: respx.MockRouter) -> None:
    ids = [svc.create_element(BODY, tenant_id="tenant-a").id for _ in range(3)]
    svc.create_element(BODY, tenant_id="tenant-b")
    progress(http, kling="processing", evolink="processing")

    first = svc.list_elements("tenant-a", limit=2, cursor=None)
    assert [item.id for item in first.items] == ids[::-1][:2]
    assert first.next_cursor is not None
    rest = svc.list_elements("tenant-a", limit=2, cursor=first.next_cursor)
    assert [item.id for item in rest.items] == [ids[0]]
    with pytest.raises(InvalidInput):
        svc.list_elements("tenant-b", limit=2, cursor=first.next_cursor)


def test_delete_removes_it_at_kling_and_here(created: Any, http: respx.MockRouter) -> None:
    element_id = ready_element(http)
    delete = http.post(KLING_DELETE).respond(json=kling_ok({}))

    svc.delete_element("tenant-a", element_id)

    assert sent(delete) == {"element_id": "900100"}  # EvoLink offers no delete: nothing sent there
    with pytest.raises(NotFound):
        svc.get_element("tenant-a", element_id)
    assert svc.list_elements("tenant-a", limit=10, cursor=None).items == []


def test_delete_when_kling_is_down_keeps_the_element(created: Any, http: respx.MockRouter) -> None:
    element_id = ready_element(http)
    http.post(KLING_DELETE).respond(status_code=503, json={"code": 5001, "message": "busy"})

    with pytest.raises(ProviderError):
        svc.delete_element("tenant-a", element_id)
    assert svc.get_element("tenant-a", element_id).status is ElementStatus.READY


# ---- generations that name elements ------------------------------------------------------------------


def i2v(element_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "mode": "image-to-video",
        "prompt": "@Element1 waves at the camera",
        "first_frame": IMG[3],
        "elements": [{"element_id": element_id}],
        **extra,
    }


@pytest.mark.parametrize(
    ("case", "issue"),
    [
        ("unknown", "unknown element elm_01JD3Z8Q6N7V5X2K9P4R1T0W8Y"),
        ("raw-provider-id", "unknown element 900100"),
        ("other-tenant", "unknown element {id}"),
        ("processing", "element {id} is still processing; retry when its status is ready"),
        ("deleted", "unknown element {id}"),
    ],
)
def test_generation_naming_an_unusable_element_is_refused_before_any_provider_call(
    created: Any, http: respx.MockRouter, case: str, issue: str
) -> None:
    element_id = {"unknown": "elm_01JD3Z8Q6N7V5X2K9P4R1T0W8Y", "raw-provider-id": "900100"}.get(case, "")
    if case in ("other-tenant", "deleted"):
        element_id = ready_element(http, tenant="tenant-b" if case == "other-tenant" else "tenant-a")
    if case == "deleted":
        http.post(KLING_DELETE).respond(json=kling_ok({}))
        svc.delete_element("tenant-a", element_id)
    if case == "processing":
        element_id = svc.create_element(BODY, tenant_id="tenant-a").id
        progress(http, kling="processing", evolink="processing")
    http.reset()

    with pytest.raises(InvalidInput) as raised:
        generations.create_generation(i2v(element_id), tenant_id="tenant-a")

    [detail] = raised.value.details
    assert (detail.field, detail.issue) == ("elements[0].element_id", issue.format(id=element_id))
    assert [call.request.method for call in http.calls if call.request.method != "GET"] == []
    assert get_generation_store().list_for_tenant("tenant-a", status=None, limit=5, cursor=None).items == []


def test_failed_element_is_refused(stack: None, http: respx.MockRouter) -> None:
    http.post(KLING_CREATE).respond(status_code=400, json={"code": 1301, "message": "policy"})
    http.post(EVO_CREATE).respond(
        status_code=400, json={"error": {"code": "content_policy", "message": "no"}}
    )
    element_id = svc.create_element(BODY, tenant_id="tenant-a").id

    with pytest.raises(InvalidInput, match="failed"):
        generations.estimate_generation(i2v(element_id), tenant_id="tenant-a")


def test_each_provider_receives_its_own_element_id(created: Any, http: respx.MockRouter) -> None:
    element_id = ready_element(http)
    kling_submit = http.post(f"{KLING}/v1/videos/omni-video").respond(
        json=kling_ok({"task_id": "vt_1", "task_status": "submitted"})
    )
    evo_submit = created["evolink"]  # the same endpoint creates elements and videos at EvoLink

    for pinned, route in (("kling", kling_submit), ("evolink", evo_submit)):
        request = parse_generation_request(i2v(element_id, provider=pinned))
        router = svc.element_router(request, tenant_id="tenant-a")
        name, _task = router.submit(request, callback_url_for=lambda _p: None, external_task_id="gen_1")
        assert name.value == pinned
        body = sent(route)
        element_list = body["element_list"] if pinned == "kling" else body["model_params"]["element_list"]
        assert element_list == [{"element_id": "900100" if pinned == "kling" else "700100"}]
    assert request.elements[0].element_id == element_id  # the stored request keeps our id


def test_only_providers_holding_every_element_are_considered(created: Any, http: respx.MockRouter) -> None:
    # Given an element ready at Kling only (EvoLink, the cheaper one, is still working on it)
    element_id = ready_element(http, evolink="processing")

    # Then the estimate rules EvoLink and kling3api out and chooses Kling
    estimate = generations.estimate_generation(i2v(element_id), tenant_id="tenant-a")
    assert estimate.chosen is not None and estimate.chosen.value == "kling"
    reasons = {quote.provider.value: quote.reason for quote in estimate.quotes if not quote.supported}
    assert reasons["evolink"] == f"element {element_id} is not available at evolink"
    assert reasons["kling3api"] == "kling3api has no elements"

    # And pinning EvoLink is refused on the provider field
    with pytest.raises(InvalidInput) as raised:
        generations.estimate_generation(i2v(element_id, provider="evolink"), tenant_id="tenant-a")
    assert raised.value.details[0].field == "provider"


def test_requests_without_elements_use_the_shared_router(stack: None) -> None:
    request = parse_generation_request({"mode": "text-to-video", "prompt": "x"})
    assert generations._router_for(request, "tenant-a") is registry.get_router()


# ---- HTTP routes --------------------------------------------------------------------------------------------


@pytest.fixture
def api(stack: None) -> Iterator[Callable[..., tuple[int, Any]]]:
    """The deployed API's resolver, with every route module included."""
    from functions.api.app import app

    def call(
        method: str, path: str, body: Any = None, *, key_id: str | None = "tenant-a", **query: str
    ) -> Any:
        event = {
            "httpMethod": method,
            "path": path,
            "resource": path,
            "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {"Content-Type": ["application/json"]},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            "pathParameters": None,
            "body": json.dumps(body) if body is not None else None,
            "isBase64Encoded": False,
            "requestContext": {
                "requestId": "req-1",
                "stage": "v1",
                "httpMethod": method,
                "path": path,
                "identity": {"apiKeyId": key_id, "sourceIp": "127.0.0.1"},
            },
        }
        response = app.resolve(event, None)  # type: ignore[arg-type]
        raw = response.get("body")
        return response["statusCode"], json.loads(raw) if raw else None

    yield call


def test_routes_create_get_list_delete(api: Callable[..., Any], created: Any, http: respx.MockRouter) -> None:
    status, element = api("POST", "/v1/elements", BODY)
    assert status == 202, element
    assert element["status"] == "processing" and element["id"].startswith("elm_")

    progress(http, kling="succeed", evolink="processing")
    status, fetched = api("GET", f"/v1/elements/{element['id']}")
    assert (status, fetched["status"], fetched["ready_providers"]) == (200, "ready", ["kling"])

    status, page = api("GET", "/v1/elements", limit="5")
    assert status == 200 and [item["id"] for item in page["items"]] == [element["id"]]

    assert api("GET", f"/v1/elements/{element['id']}", key_id="tenant-b")[0] == 404
    http.post(KLING_DELETE).respond(json=kling_ok({}))
    assert api("DELETE", f"/v1/elements/{element['id']}") == (204, None)
    assert api("GET", f"/v1/elements/{element['id']}")[0] == 404


def test_routes_validate_and_need_a_tenant(api: Callable[..., Any], http: respx.MockRouter) -> None:
    status, body = api("POST", "/v1/elements", {**BODY, "name": "x" * 21})
    assert status == 422 and body["error"]["details"][0]["field"] == "name"
    assert api("GET", "/v1/elements", limit="0")[0] == 422
    assert api("GET", "/v1/elements", key_id=None)[0] == 401
    assert not http.calls
