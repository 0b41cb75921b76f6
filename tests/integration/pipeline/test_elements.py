"""Custom elements end to end: created at the simulated providers through our API, tracked until ready,
used by a generation (each provider gets its own element id), private to the tenant, deleted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kling_local.stack.runner import LocalStack
from tests.integration.waiting import wait_for
from tests.media_server import sample_media

from .conftest import wait_terminal

pytestmark = pytest.mark.integration

IMG = [f"{sample_media().base}/image.png?hero={n}" for n in range(3)]  # probed: real files on loopback
ELEMENT = {"name": "Hero", "description": "our mascot", "frontal_image": IMG[0], "reference_images": IMG[1:]}


def wait_ready(api: httpx.Client, element_id: str, *, providers: set[str]) -> dict[str, Any]:
    """Poll GET (which refreshes from the providers) until the element is ready at `providers`."""

    def ready() -> dict[str, Any] | None:
        answer = api.get(f"/v1/elements/{element_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["status"] in {"processing", "ready"}, body
        return body if providers <= set(body["ready_providers"]) else None

    result: dict[str, Any] = wait_for(ready, timeout=60)
    return result


def test_element_lifecycle_and_generation_with_it(
    stack: LocalStack, sim: Any, api: httpx.Client, api_b: httpx.Client
) -> None:
    # Given an element created through the API
    created = api.post("/v1/elements", json=ELEMENT)
    assert created.status_code == 202, created.text
    element = created.json()
    element_id = element["id"]
    assert element["status"] == "processing"
    assert set(element["providers"]) == {"kling", "evolink"}

    # When it is polled, it becomes ready at both providers, each with its own element id
    ready = wait_ready(api, element_id, providers={"kling", "evolink"})
    assert ready["status"] == "ready"
    own_ids = {name: ready["providers"][name]["element_id"] for name in ("kling", "evolink")}
    at_providers = {(t["provider"], t["element_id"]) for t in sim.tasks() if t["kind"] == "element"}
    assert set(own_ids.items()) <= at_providers
    assert [item["id"] for item in api.get("/v1/elements").json()["items"]][:1] == [element_id]

    # Then a generation with it succeeds at each provider, which received its own element id
    for provider in ("kling", "evolink"):
        generation = api.post(
            "/v1/generations",
            json={
                "mode": "image-to-video",
                "prompt": "@Element1 waves at the camera",
                "first_frame": IMG[0],
                "elements": [{"element_id": element_id}],
                "duration": 3,
                "provider": provider,
            },
        )
        assert generation.status_code == 202, generation.text
        done = wait_terminal(api, generation.json()["id"])
        assert done["status"] == "succeeded", done
        assert done["provider"] == provider
        assert done["request"]["elements"] == [{"element_id": element_id}]  # ours is what we keep
        creates = [
            r
            for r in sim.requests(provider)
            if r["method"] == "POST"
            and r["path"] in ("/v1/videos/omni-video", "/v1/videos/generations")
            and (r.get("json") or {}).get("model") != "kling-custom-element"
        ]
        body = creates[-1]["json"]
        element_list = body["element_list"] if provider == "kling" else body["model_params"]["element_list"]
        assert element_list == [{"element_id": own_ids[provider]}]

    # And another tenant cannot see, use or delete it
    assert api_b.get(f"/v1/elements/{element_id}").status_code == 404
    assert api_b.delete(f"/v1/elements/{element_id}").status_code == 404
    assert element_id not in [item["id"] for item in api_b.get("/v1/elements").json()["items"]]
    refused = api_b.post(
        "/v1/generations",
        json={
            "mode": "reference-to-video",
            "prompt": "@Element1 dances",
            "elements": [{"element_id": element_id}],
            "aspect_ratio": "1:1",
        },
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == [
        {"field": "elements[0].element_id", "issue": f"unknown element {element_id}"}
    ]

    # And DELETE removes it here and at Kling
    assert api.delete(f"/v1/elements/{element_id}").status_code == 204
    assert api.get(f"/v1/elements/{element_id}").status_code == 404
    kling_element = next(
        t for t in sim.tasks("kling") if t["kind"] == "element" and t["element_id"] == own_ids["kling"]
    )
    assert kling_element["deleted"] is True


def test_a_generation_naming_an_element_still_processing_is_refused(
    stack: LocalStack, sim: Any, api: httpx.Client
) -> None:
    sim.config = sim.config.model_copy(update={"generation_time_s": 30.0})
    element_id = api.post("/v1/elements", json=ELEMENT).json()["id"]
    before = len(sim.requests())

    refused = api.post(
        "/v1/generations",
        json={
            "mode": "reference-to-video",
            "prompt": "@Element1 dances",
            "elements": [{"element_id": element_id}],
            "aspect_ratio": "1:1",
        },
    )

    assert refused.status_code == 422
    [detail] = refused.json()["error"]["details"]
    assert detail == {
        "field": "elements[0].element_id",
        "issue": f"element {element_id} is still processing; retry when its status is ready",
    }
    # Only element status queries reached the providers: no video was created
    assert all(r["method"] == "GET" for r in sim.requests()[before:])
    assert api.delete(f"/v1/elements/{element_id}").status_code == 204


def test_idempotency_key_creates_the_element_once(stack: LocalStack, sim: Any, api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "element-once-1"}
    kling_creates = lambda: [  # noqa: E731
        r
        for r in sim.requests("kling")
        if r["method"] == "POST" and r["path"] == "/v1/general/advanced-custom-elements"
    ]
    before = len(kling_creates())

    first = api.post("/v1/elements", json=ELEMENT, headers=headers)
    again = api.post("/v1/elements", json=ELEMENT, headers=headers)
    other = api.post("/v1/elements", json={**ELEMENT, "name": "Villain"}, headers=headers)

    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 409)
    assert again.json()["id"] == first.json()["id"]
    assert len(kling_creates()) == before + 1
    assert api.delete(f"/v1/elements/{first.json()['id']}").status_code == 204
