"""The provider simulator over real HTTP: wire shapes, auth, validation, lifecycle, callbacks, faults.

Driven with plain httpx (not through the pipeline's adapters) so a failure here points at the simulator.
Every video downloaded is decoded by ffmpeg and its resolution and duration checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from kling_local.mp4gen import ffmpeg_exe
from kling_local.simulator import SimulatorServer
from kling_local.simulator.config import SimAccount, SimConfig
from tests.integration.waiting import wait_for

pytestmark = pytest.mark.integration

EVOLINK_KEY = {"authorization": "Bearer sim-evolink-key"}
K3_KEY = {"authorization": "Bearer sim-kling3api-key"}
OMNI = "/v1/videos/omni-video"


# -- helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def http(simulator: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.url, timeout=30) as client:
        yield client


def kling_headers(simulator: SimulatorServer) -> dict[str, str]:
    return {"authorization": f"Bearer {simulator.kling_jwt()}"}


def omni_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": "kling-v3-omni",
        "prompt": "A lighthouse at dawn",
        "mode": "std",
        "aspect_ratio": "16:9",
        "duration": "3",
    }
    return body | overrides


def kling_task(
    http: httpx.Client, simulator: SimulatorServer, task_id: str, path: str = OMNI
) -> dict[str, Any]:
    answer = http.get(f"{path}/{task_id}", headers=kling_headers(simulator))
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def kling_final(
    http: httpx.Client, simulator: SimulatorServer, task_id: str, path: str = OMNI
) -> dict[str, Any]:
    result: dict[str, Any] = wait_for(
        lambda: (
            (t := kling_task(http, simulator, task_id, path))["task_status"] in ("succeed", "failed") and t
        )
    )
    return result


def probe(video: Path) -> dict[str, Any]:
    """Decode the whole file (errors fail the test) and read its resolution, duration and streams."""
    decoded = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert decoded.returncode == 0 and decoded.stderr.strip() == "", decoded.stderr
    info = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(video)], capture_output=True, text=True, check=False
    )
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info.stderr)
    size = re.search(r"Video: h264.*?, (\d+)x(\d+)", info.stderr)
    assert duration and size, info.stderr
    hours, minutes, seconds = duration.groups()
    return {
        "width": int(size.group(1)),
        "height": int(size.group(2)),
        "duration": int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        "audio": "Audio:" in info.stderr,
        "yuv420p": "yuv420p" in info.stderr,
    }


def top_level_boxes(data: bytes) -> list[tuple[bytes, int]]:
    """(type, size) of each top-level MP4 box; the sizes must tile the file exactly."""
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8]
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        assert size >= 8 and offset + size <= len(data), (kind, size, offset)
        boxes.append((kind, size))
        offset += size
    return boxes


def download(url: str, target: Path) -> Path:
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.content[4:8] == b"ftyp"
    target.write_bytes(answer.content)
    return target


# -- kling (official) -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_kling_rejects_missing_and_invalid_jwts(http: httpx.Client, simulator: SimulatorServer) -> None:
    now = int(time.time())

    def token(claims: dict[str, Any], key: str = "sim-secret-key-local-simulator-only") -> str:
        return jwt.encode(claims, key, algorithm="HS256")

    cases = {
        None: 1001,
        "Basic abc": 1002,
        "Bearer not-a-jwt": 1002,
        f"Bearer {token({'iss': 'sim-access-key', 'exp': now + 60}, key='x' * 32)}": 1002,
        f"Bearer {token({'iss': 'someone-else', 'exp': now + 60})}": 1000,
        f"Bearer {token({'iss': 'sim-access-key', 'exp': now + 60, 'nbf': now + 600})}": 1003,
        f"Bearer {token({'iss': 'sim-access-key', 'exp': now - 60})}": 1004,
    }
    for header, code in cases.items():
        answer = http.post(OMNI, json=omni_body(), headers={"authorization": header} if header else {})
        assert answer.status_code == 401, header
        assert answer.json()["code"] == code, (header, answer.json())
    assert simulator.stats()["tasks_created"]["kling"] == 0
    assert all("authorization" not in r["headers"] for r in simulator.requests())


def test_kling_omni_lifecycle_callbacks_query_and_playable_download(
    http: httpx.Client, simulator: SimulatorServer, callback_receiver: Any, tmp_path: Path
) -> None:
    # Given a portrait 720p request with a callback and an external id
    body = omni_body(aspect_ratio="9:16", external_task_id="gen-001", callback_url=callback_receiver.url)
    created = http.post(OMNI, json=body, headers=kling_headers(simulator))
    assert created.status_code == 200, created.text
    envelope = created.json()
    assert envelope["code"] == 0 and envelope["message"] == "SUCCEED" and envelope["request_id"]
    data = envelope["data"]
    assert data["task_status"] == "submitted"
    assert data["task_info"] == {"external_task_id": "gen-001"}
    assert isinstance(data["created_at"], int) and data["created_at"] > 10**12  # milliseconds

    # Then callbacks arrive for processing and succeed, bare task objects
    bodies = callback_receiver.wait_for(2)
    assert [b["task_status"] for b in bodies] == ["processing", "succeed"]
    final = bodies[-1]
    assert final["task_id"] == data["task_id"] and final["task_info"]["external_task_id"] == "gen-001"
    assert "code" not in final

    # And the task is found by task id and by external id, and listed
    for key in (data["task_id"], "gen-001"):
        task = kling_task(http, simulator, key)
        assert task["task_status"] == "succeed"
        assert float(task["final_unit_deduction"]) > 0
    listed = http.get(OMNI, params={"pageNum": 1, "pageSize": 10}, headers=kling_headers(simulator)).json()[
        "data"
    ]
    assert [t["task_id"] for t in listed] == [data["task_id"]]

    # And the video is a real 720x1280, 3 s H.264 MP4
    video = task["task_result"]["videos"][0]
    assert video["duration"] == "3.0"
    info = probe(download(video["url"], tmp_path / "kling.mp4"))
    assert (info["width"], info["height"]) == (720, 1280)
    assert info["duration"] == pytest.approx(3.0, abs=0.1)
    assert info["yuv420p"] and not info["audio"]


def test_kling_text2video_and_image2video_endpoints(http: httpx.Client, simulator: SimulatorServer) -> None:
    headers = kling_headers(simulator)
    text = http.post(
        "/v1/videos/text2video",
        json={
            "model_name": "kling-v3",
            "prompt": "Rain",
            "negative_prompt": "blur",
            "cfg_scale": 0.5,
            "duration": "5",
        },
        headers=headers,
    )
    assert text.status_code == 200, text.text
    image = http.post(
        "/v1/videos/image2video",
        json={"model_name": "kling-v3", "image": "https://example.com/a.png", "mode": "pro", "duration": "3"},
        headers=headers,
    )
    assert image.status_code == 200, image.text
    text_id, image_id = text.json()["data"]["task_id"], image.json()["data"]["task_id"]
    assert kling_final(http, simulator, text_id, "/v1/videos/text2video")["task_status"] == "succeed"
    assert kling_final(http, simulator, image_id, "/v1/videos/image2video")["task_status"] == "succeed"
    # a task lives under its own endpoint only
    wrong = http.get(f"{OMNI}/{text_id}", headers=headers)
    assert wrong.status_code == 404 and wrong.json()["code"] == 1203
    spec = {t["task_id"]: t["spec"] for t in simulator.tasks("kling")}
    assert spec[image_id] == {"width": 1920, "height": 1080, "duration_s": 3.0, "sound": False}
    missing = http.post("/v1/videos/image2video", json={"model_name": "kling-v3"}, headers=headers)
    assert missing.status_code == 400 and missing.json()["code"] == 1201


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"duration": 5}, "string"),
        ({"duration": "20"}, "duration"),
        ({"mode": "turbo"}, "mode"),
        ({"model_name": "kling-v9"}, "model_name"),
        ({"sound": "yes"}, "sound"),
        ({"prompt": "x" * 2501}, "2500"),
        ({"aspect_ratio": None}, "aspect_ratio"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"image_list": [{"image_url": "https://e.x/1.png", "type": "end_frame"}]}, "first_frame"),
        ({"image_list": [{"image_url": "https://e.x/1.png", "type": "middle"}]}, "type"),
        ({"video_list": [{"video_url": "https://e.x/v.mp4", "refer_type": "style"}]}, "refer_type"),
        (
            {"video_list": [{"video_url": "https://e.x/v.mp4", "refer_type": "feature"}], "sound": "on"},
            "sound",
        ),
        (
            {"video_list": [{"video_url": "https://e.x/v.mp4", "refer_type": "feature"}], "duration": "12"},
            "duration",
        ),
        ({"element_list": [{"element_id": str(n)} for n in range(8)]}, "exceed 7"),
        (
            {
                "multi_shot": True,
                "shot_type": "customize",
                "multi_prompt": [
                    {"index": 1, "prompt": "a", "duration": "2"},
                    {"index": 2, "prompt": "b", "duration": "2"},
                ],
            },
            "add up to 4",
        ),
        ({"multi_shot": True}, "shot_type"),
    ],
)
def test_kling_validation_errors(
    http: httpx.Client, simulator: SimulatorServer, overrides: dict[str, Any], fragment: str
) -> None:
    body = {k: v for k, v in omni_body(**overrides).items() if v is not None}
    answer = http.post(OMNI, json=body, headers=kling_headers(simulator))
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == 1201
    assert fragment in answer.json()["message"]


def test_kling_video_edit_takes_its_duration_from_the_input_and_needs_no_aspect_ratio(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    edit = {
        "video_list": [{"video_url": "https://e.x/in.mp4?duration=4", "refer_type": "base"}],
        "aspect_ratio": None,
    }
    body = {k: v for k, v in omni_body(**edit).items() if v is not None}
    answer = http.post(OMNI, json=body, headers=kling_headers(simulator))
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["data"]["task_id"]
    assert kling_final(http, simulator, task_id)["task_result"]["videos"][0]["duration"] == "4.0"
    too_long = {"video_list": [{"video_url": "https://e.x/in.mp4?duration=12", "refer_type": "base"}]}
    refused = http.post(OMNI, json=omni_body(**too_long), headers=kling_headers(simulator))
    assert refused.status_code == 400 and "10 seconds" in refused.json()["message"]


def test_kling_external_task_id_is_unique_per_account(http: httpx.Client, simulator: SimulatorServer) -> None:
    first = http.post(OMNI, json=omni_body(external_task_id="dup"), headers=kling_headers(simulator))
    assert first.status_code == 200
    again = http.post(
        "/v1/videos/text2video",
        json=omni_body(external_task_id="dup", model_name="kling-v3"),
        headers=kling_headers(simulator),
    )
    assert again.status_code == 400
    assert again.json() | {"request_id": None} == {
        "code": 1201,
        "message": "external_task_id already exists",
        "request_id": None,
    }


def test_kling_elements_lifecycle(http: httpx.Client, simulator: SimulatorServer) -> None:
    headers = kling_headers(simulator)
    body = {
        "element_name": "Hero",
        "element_description": "our mascot",
        "reference_type": "image_refer",
        "element_image_list": {
            "frontal_image": "https://e.x/front.png",
            "refer_images": [{"image_url": "https://e.x/side.png"}],
        },
    }
    created = http.post("/v1/general/advanced-custom-elements", json=body, headers=headers)
    assert created.status_code == 200, created.text
    task_id = created.json()["data"]["task_id"]

    def ready() -> dict[str, Any] | None:
        data: dict[str, Any] = http.get(
            f"/v1/general/advanced-custom-elements/{task_id}", headers=headers
        ).json()["data"]
        return data if data["task_status"] == "succeed" else None

    element = wait_for(ready)["task_result"]["elements"][0]
    assert isinstance(element["element_id"], int) and element["element_name"] == "Hero"
    listed = http.get("/v1/general/advanced-custom-elements", headers=headers).json()["data"]
    assert [t["task_id"] for t in listed] == [task_id]
    deleted = http.post(
        "/v1/general/delete-elements", json={"element_id": str(element["element_id"])}, headers=headers
    )
    assert deleted.status_code == 200 and deleted.json()["data"] == {}
    assert http.get("/v1/general/advanced-custom-elements", headers=headers).json()["data"] == []
    gone = http.post(
        "/v1/general/delete-elements", json={"element_id": str(element["element_id"])}, headers=headers
    )
    assert gone.status_code == 404 and gone.json()["code"] == 1203


# -- evolink ----------------------------------------------------------------------------------------


def test_evolink_create_callback_query_and_download(
    http: httpx.Client, simulator: SimulatorServer, callback_receiver: Any, tmp_path: Path
) -> None:
    body = {
        "model": "kling-o3-image-to-video",
        "prompt": "The statue turns its head",
        "image_start": "https://e.x/first.png",
        "duration": 3,
        "aspect_ratio": "1:1",
        "quality": "1080p",
        "sound": "on",
        "callback_url": callback_receiver.url,
        "model_params": {"element_list": [{"element_id": "123456"}], "watermark_info": {"enabled": False}},
    }
    created = http.post("/v1/videos/generations", json=body, headers=EVOLINK_KEY)
    assert created.status_code == 200, created.text
    task = created.json()
    assert task["id"].startswith("task-unified-")
    assert (task["object"], task["status"], task["progress"], task["type"]) == (
        "video.generation.task",
        "pending",
        0,
        "video",
    )
    assert task["model"] == "kling-o3-image-to-video"
    assert task["usage"]["cost_usd"] == pytest.approx(0.375)  # 1080p + sound: $0.125/s x 3 s

    # EvoLink calls back once, on completion only
    final = callback_receiver.wait_for(1)[0]
    assert final["status"] == "completed" and final["progress"] == 100 and final["id"] == task["id"]
    time.sleep(0.2)
    assert len(callback_receiver.bodies) == 1

    queried = http.get(f"/v1/tasks/{task['id']}", headers=EVOLINK_KEY).json()
    assert queried["status"] == "completed" and len(queried["results"]) == 1
    info = probe(download(queried["results"][0], tmp_path / "evolink.mp4"))
    assert (info["width"], info["height"]) == (1080, 1080)
    assert info["audio"] and info["duration"] == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "kling-o3-turbo", "prompt": "x"}, "model"),
        ({"model": "kling-o3-text-to-video", "prompt": "x", "duration": 16}, "between 3 and 15"),
        ({"model": "kling-o3-text-to-video", "prompt": "x", "duration": "5"}, "integer"),
        (
            {"model": "kling-o3-reference-to-video", "video_url": "https://e.x/v.mp4", "duration": 11},
            "between 3 and 10",
        ),
        ({"model": "kling-o3-text-to-video", "prompt": "x", "quality": "8k"}, "quality"),
        ({"model": "kling-o3-image-to-video", "prompt": "x"}, "at least one image"),
        ({"model": "kling-o3-image-to-video", "image_end": "https://e.x/e.png"}, "image_start"),
        ({"model": "kling-o3-video-edit", "prompt": "snow"}, "video_url"),
        ({"model": "kling-o3-text-to-video", "prompt": "x", "callback_url": "http://example.com/h"}, "HTTPS"),
        (
            {"model": "kling-o3-text-to-video", "prompt": "x", "callback_url": "https://10.0.0.1/h"},
            "internal",
        ),
        (
            {
                "model": "kling-o3-text-to-video",
                "duration": 5,
                "model_params": {
                    "multi_shot": True,
                    "shot_type": "customize",
                    "multi_prompt": [{"index": 1, "prompt": "a", "duration": "3"}],
                },
            },
            "add up to 3",
        ),
    ],
)
def test_evolink_validation_errors(http: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    answer = http.post("/v1/videos/generations", json=body, headers=EVOLINK_KEY)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_parameter" and error["type"] == "invalid_request_error"
    assert fragment in error["message"]


def test_evolink_auth_cancel_and_unknown_task(
    http: httpx.Client, simulator: SimulatorServer, callback_receiver: Any
) -> None:
    refused = http.post(
        "/v1/videos/generations",
        json={"model": "kling-o3-text-to-video", "prompt": "x"},
        headers={"authorization": "Bearer wrong"},
    )
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    body = {
        "model": "kling-o3-text-to-video",
        "prompt": "forever [sim:never]",
        "callback_url": callback_receiver.url,
    }
    task = http.post("/v1/videos/generations", json=body, headers=EVOLINK_KEY).json()
    time.sleep(0.4)
    assert http.get(f"/v1/tasks/{task['id']}", headers=EVOLINK_KEY).json()["status"] == "processing"
    cancelled = http.post(f"/v1/tasks/{task['id']}/cancel", headers=EVOLINK_KEY)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "failed" and cancelled.json()["error"]["code"] == "cancelled"
    assert callback_receiver.wait_for(1)[0]["error"]["code"] == "cancelled"
    again = http.post(f"/v1/tasks/{task['id']}/cancel", headers=EVOLINK_KEY)  # idempotent
    assert again.status_code == 200 and again.json()["status"] == "failed"
    time.sleep(0.1)
    assert len(callback_receiver.bodies) == 1
    unknown = http.get("/v1/tasks/task-unified-0-nope", headers=EVOLINK_KEY)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "task_not_found"


def test_evolink_retries_a_failing_callback(
    http: httpx.Client, simulator: SimulatorServer, callback_receiver: Any
) -> None:
    callback_receiver.statuses = [500, 503]
    body = {
        "model": "kling-o3-text-to-video",
        "prompt": "x",
        "duration": 3,
        "callback_url": callback_receiver.url,
    }
    task = http.post("/v1/videos/generations", json=body, headers=EVOLINK_KEY).json()
    callback_receiver.wait_for(3)
    attempts = wait_for(lambda: len(a := simulator.callbacks(task["id"])) == 3 and a)
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500), (2, 503), (3, 200)]


def test_evolink_custom_element(http: httpx.Client) -> None:
    body = {
        "model": "kling-custom-element",
        "element_name": "Hero",
        "frontal_image_url": "https://e.x/front.png",
        "reference_image_urls": ["https://e.x/side.png"],
    }
    task = http.post("/v1/videos/generations", json=body, headers=EVOLINK_KEY).json()
    done = wait_for(
        lambda: (
            (t := http.get(f"/v1/tasks/{task['id']}", headers=EVOLINK_KEY).json())["status"] == "completed"
            and t
        )
    )
    assert done["type"] == "element" and done["results"][0].isdigit()


# -- kling3api --------------------------------------------------------------------------------------


def test_kling3api_generate_status_and_download(http: httpx.Client, tmp_path: Path) -> None:
    o3 = http.post(
        "/api/generate",
        json={
            "type": "o3-std-text-to-video",
            "prompt": "Waves",
            "duration": 3,
            "aspect_ratio": "16:9",
            "sound": False,
        },
        headers=K3_KEY,
    )
    assert o3.status_code == 200, o3.text
    assert o3.json()["code"] == 200 and o3.json()["message"] == "success"
    data = o3.json()["data"]
    assert data["task_id"].startswith("n71") and data["status"] == "IN_PROGRESS"
    assert data["consumed_credits"] == 36 * 3
    classic = http.post(
        "/api/generate", json={"type": "pro-text-to-video", "prompt": "Eagle"}, headers=K3_KEY
    ).json()
    assert classic["data"]["task_id"].startswith("n75") and classic["data"]["consumed_credits"] == 400

    def done() -> dict[str, Any] | None:
        status: dict[str, Any] = http.get(
            "/api/status", params={"task_id": data["task_id"]}, headers=K3_KEY
        ).json()
        return status if status["data"]["status"] == "SUCCESS" else None

    status = wait_for(done)["data"]
    assert status["type"] == "o3-std-text-to-video" and status["error_message"] is None
    assert status["request"] == {
        "type": "o3-std-text-to-video",
        "prompt": "Waves",
        "duration": 3,
        "aspect_ratio": "16:9",
    }
    info = probe(download(status["response"][0], tmp_path / "k3.mp4"))
    assert (info["width"], info["height"], info["audio"]) == (1280, 720, False)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"type": "o3-ultra-text-to-video", "prompt": "x"}, 400, "INVALID_TYPE"),
        ({"type": "o3-pro-text-to-video", "prompt": ""}, 400, "INVALID_PROMPT"),
        ({"type": "o3-pro-text-to-video", "prompt": "x" * 2001}, 400, "INVALID_PROMPT"),
        ({"type": "o3-pro-text-to-video", "prompt": "x", "duration": 20}, 400, "INVALID_DURATION"),
        ({"type": "pro-image-to-video", "prompt": "x"}, 400, "MISSING_IMAGE"),
        ({"type": "o3-pro-video-edit", "prompt": "x"}, 400, "MISSING_VIDEO"),
    ],
)
def test_kling3api_errors(http: httpx.Client, body: dict[str, Any], status: int, code: str) -> None:
    answer = http.post("/api/generate", json=body, headers=K3_KEY)
    assert answer.status_code == status and answer.json()["code"] == code, answer.text


def test_kling3api_auth_and_unknown_task(http: httpx.Client) -> None:
    refused = http.get("/api/status", params={"task_id": "n71x"})
    assert refused.status_code == 401 and refused.json()["code"] == "INVALID_API_KEY"
    assert http.get("/api/status", params={"task_id": "n71x"}, headers=K3_KEY).status_code == 404


# -- tags -------------------------------------------------------------------------------------------


def test_content_policy_tag_is_rejected_at_create_by_every_provider(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    prompt = "something [sim:content_policy]"
    kling = http.post(OMNI, json=omni_body(prompt=prompt), headers=kling_headers(simulator))
    assert kling.status_code == 400 and kling.json()["code"] == 1301
    evolink = http.post(
        "/v1/videos/generations",
        json={"model": "kling-o3-text-to-video", "prompt": prompt},
        headers=EVOLINK_KEY,
    )
    assert evolink.status_code == 400 and evolink.json()["error"]["code"] == "content_policy_violation"
    k3 = http.post("/api/generate", json={"type": "o3-pro-text-to-video", "prompt": prompt}, headers=K3_KEY)
    assert k3.status_code == 400 and k3.json()["code"] == "INVALID_PROMPT"
    assert simulator.tasks() == []


def test_fail_tag_and_failure_rate_end_tasks_failed(
    http: httpx.Client, simulator: SimulatorServer, callback_receiver: Any
) -> None:
    tagged = http.post(
        OMNI,
        json=omni_body(prompt="boom [sim:fail]", callback_url=callback_receiver.url),
        headers=kling_headers(simulator),
    ).json()["data"]
    final = kling_final(http, simulator, tagged["task_id"])
    assert final["task_status"] == "failed" and "[sim:fail]" in final["task_status_msg"]
    assert final["task_result"]["videos"] == [] and final["final_unit_deduction"] == "0"
    assert callback_receiver.wait_for(2)[-1]["task_status"] == "failed"

    simulator.configure(failure_rate={"evolink": 1.0})
    task = http.post(
        "/v1/videos/generations", json={"model": "kling-o3-text-to-video", "prompt": "x"}, headers=EVOLINK_KEY
    ).json()
    failed = wait_for(
        lambda: (
            (t := http.get(f"/v1/tasks/{task['id']}", headers=EVOLINK_KEY).json())["status"] == "failed" and t
        )
    )
    assert failed["error"]["code"] == "generation_failed" and failed["results"] == []


# -- faults -----------------------------------------------------------------------------------------


def test_concurrency_limit_answers_429_per_provider(http: httpx.Client, simulator: SimulatorServer) -> None:
    simulator.configure(concurrency_limit={"kling": 2, "evolink": 1, "kling3api": 1})
    headers = kling_headers(simulator)
    for n in range(2):
        assert http.post(OMNI, json=omni_body(prompt=f"{n} [sim:never]"), headers=headers).status_code == 200
    third = http.post(OMNI, json=omni_body(), headers=headers)
    assert third.status_code == 429 and third.json()["code"] == 1303
    evolink_body = {"model": "kling-o3-text-to-video", "prompt": "x [sim:never]"}
    assert http.post("/v1/videos/generations", json=evolink_body, headers=EVOLINK_KEY).status_code == 200
    assert http.post("/v1/videos/generations", json=evolink_body, headers=EVOLINK_KEY).status_code == 429
    k3_body = {"type": "o3-pro-text-to-video", "prompt": "x [sim:never]"}
    assert http.post("/api/generate", json=k3_body, headers=K3_KEY).status_code == 200
    limited = http.post("/api/generate", json=k3_body, headers=K3_KEY)
    assert limited.status_code == 429 and limited.json()["code"] == "RATE_LIMITED"
    stats = simulator.stats()
    assert stats["in_flight"] == {"kling": 2, "evolink": 1, "kling3api": 1}
    assert stats["max_in_flight"] == {"kling": 2, "evolink": 1, "kling3api": 1}


def test_a_lost_create_answer_still_creates_the_task_once(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.configure(create_lost_response_count=1)
    lost = http.post(OMNI, json=omni_body(external_task_id="gen-lost"), headers=kling_headers(simulator))
    assert lost.status_code == 500 and lost.json()["code"] == 5000
    found = kling_task(http, simulator, "gen-lost")
    assert found["task_info"]["external_task_id"] == "gen-lost"
    retried = http.post(OMNI, json=omni_body(external_task_id="gen-lost"), headers=kling_headers(simulator))
    assert retried.status_code == 400 and "already exists" in retried.json()["message"]
    assert simulator.stats()["tasks_created"]["kling"] == 1
    assert simulator.config.create_lost_response_count == 0


def test_random_5xx_and_429_apply_to_create_and_query(http: httpx.Client, simulator: SimulatorServer) -> None:
    simulator.configure(error_5xx_rate={"evolink": 1.0}, error_429_rate={"kling": 1.0})
    evolink = http.post(
        "/v1/videos/generations", json={"model": "kling-o3-text-to-video", "prompt": "x"}, headers=EVOLINK_KEY
    )
    assert evolink.status_code == 500 and evolink.json()["error"]["type"] == "api_error"
    assert http.get("/v1/tasks/whatever", headers=EVOLINK_KEY).status_code == 500
    kling = http.post(OMNI, json=omni_body(), headers=kling_headers(simulator))
    assert kling.status_code == 429 and kling.json()["code"] == 1302
    assert (
        http.post(
            "/api/generate", json={"type": "o3-pro-text-to-video", "prompt": "x"}, headers=K3_KEY
        ).status_code
        == 200
    )


def test_download_links_expire_and_cannot_be_forged(http: httpx.Client, simulator: SimulatorServer) -> None:
    simulator.configure(link_ttl_s=0.5)
    task_id = http.post(OMNI, json=omni_body(), headers=kling_headers(simulator)).json()["data"]["task_id"]
    url = kling_final(http, simulator, task_id)["task_result"]["videos"][0]["url"]
    assert httpx.head(url).status_code == 200
    token = url.split("/files/")[1].split("/")[0]
    forged = url.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert httpx.get(forged).status_code == 403
    time.sleep(0.6)
    expired = httpx.get(url)
    assert expired.status_code == 403 and "expired" in expired.text


def test_mid_stream_cut_then_range_resume(
    http: httpx.Client, simulator: SimulatorServer, tmp_path: Path
) -> None:
    task_id = http.post(OMNI, json=omni_body(), headers=kling_headers(simulator)).json()["data"]["task_id"]
    url = kling_final(http, simulator, task_id)["task_result"]["videos"][0]["url"]
    whole = httpx.get(url).content
    simulator.configure(download_fail_after_bytes=100_000, download_fail_count=1)
    received = bytearray()
    with pytest.raises(httpx.HTTPError), httpx.stream("GET", url) as answer:
        assert answer.headers["content-length"] == str(len(whole))
        for chunk in answer.iter_raw():
            received += chunk
    assert len(received) == 100_000 and bytes(received) == whole[:100_000]
    resumed = httpx.get(url, headers={"range": f"bytes={len(received)}-"})
    assert resumed.status_code == 206
    assert resumed.headers["content-range"] == f"bytes 100000-{len(whole) - 1}/{len(whole)}"
    assert bytes(received) + resumed.content == whole
    assert probe(download(url, tmp_path / "after.mp4"))["width"] == 1280  # the knob was used up


def test_padded_output_is_streamed_and_still_a_valid_mp4(
    http: httpx.Client, simulator: SimulatorServer, tmp_path: Path
) -> None:
    pad_to = 8 * 1024 * 1024
    simulator.configure(output_pad_to_bytes=pad_to)
    task_id = http.post(OMNI, json=omni_body(), headers=kling_headers(simulator)).json()["data"]["task_id"]
    url = kling_final(http, simulator, task_id)["task_result"]["videos"][0]["url"]
    assert httpx.head(url).headers["content-length"] == str(pad_to)
    video = download(url, tmp_path / "padded.mp4")
    data = video.read_bytes()
    boxes = top_level_boxes(data)
    assert [kind for kind, _ in boxes][:2] == [b"ftyp", b"moov"]  # faststart: the index comes first
    assert boxes[-1][0] == b"free" and sum(size for _, size in boxes) == len(data) == pad_to
    assert probe(video)["duration"] == pytest.approx(3.0, abs=0.1)


def test_callback_drop_duplicate_out_of_order_and_drop_tag(
    http: httpx.Client, simulator: SimulatorServer, callback_receiver: Any
) -> None:
    headers = kling_headers(simulator)
    # dropped: recorded as such, never delivered
    simulator.configure(callback_drop_rate=1.0)
    dropped = http.post(OMNI, json=omni_body(callback_url=callback_receiver.url), headers=headers).json()[
        "data"
    ]
    kling_final(http, simulator, dropped["task_id"])
    wait_for(lambda: len(simulator.callbacks(dropped["task_id"])) == 2)
    assert {c["error"] for c in simulator.callbacks(dropped["task_id"])} == {"dropped"}
    # the tag drops them without even recording an attempt
    simulator.configure(callback_drop_rate=0.0)
    tagged = http.post(
        OMNI,
        json=omni_body(prompt="quiet [sim:drop_callback]", callback_url=callback_receiver.url),
        headers=headers,
    ).json()["data"]
    kling_final(http, simulator, tagged["task_id"])
    # duplicated and out of order: final twice, then the stale 'processing' one
    simulator.configure(callback_duplicate_rate=1.0, callback_out_of_order=True)
    noisy = http.post(OMNI, json=omni_body(callback_url=callback_receiver.url), headers=headers).json()[
        "data"
    ]
    bodies = callback_receiver.wait_for(3)
    time.sleep(0.3)
    assert [b["task_status"] for b in callback_receiver.bodies] == ["succeed", "succeed", "processing"]
    assert {b["task_id"] for b in bodies} == {noisy["task_id"]}
    assert simulator.callbacks(tagged["task_id"]) == []


def test_callback_delay(http: httpx.Client, simulator: SimulatorServer, callback_receiver: Any) -> None:
    simulator.configure(callback_delay_s=0.5)
    body = {"model": "kling-o3-text-to-video", "prompt": "x", "callback_url": callback_receiver.url}
    task = http.post("/v1/videos/generations", json=body, headers=EVOLINK_KEY).json()
    completed_at = wait_for(
        lambda: (
            http.get(f"/v1/tasks/{task['id']}", headers=EVOLINK_KEY).json()["status"] == "completed"
            and time.monotonic()
        )
    )
    callback_receiver.wait_for(1)
    assert time.monotonic() - completed_at >= 0.35


# -- control API ------------------------------------------------------------------------------------


def test_control_endpoints(http: httpx.Client, simulator: SimulatorServer) -> None:
    config = http.get("/_sim/config").json()
    assert config["generation_time_s"] == 0.3
    changed = http.put("/_sim/config", json={"failure_rate": {"kling": 0.5}, "callback_delay_s": 1})
    assert changed.status_code == 200 and changed.json()["failure_rate"] == {"kling": 0.5}
    assert simulator.config.callback_delay_s == 1
    assert http.put("/_sim/config", json={"no_such_knob": 1}).status_code == 400
    assert http.put("/_sim/config", json={"failure_rate": 2}).status_code == 400

    http.post(OMNI, json=omni_body(external_task_id="ctl"), headers=kling_headers(simulator))
    requests = http.get("/_sim/requests", params={"provider": "kling"}).json()
    assert requests[-1]["json"]["external_task_id"] == "ctl" and requests[-1]["status"] == 200
    assert "authorization" not in requests[-1]["headers"]
    tasks = http.get("/_sim/tasks").json()
    assert [t["external_task_id"] for t in tasks] == ["ctl"]
    assert http.get("/_sim/stats").json()["tasks_created"]["kling"] == 1
    assert http.get("/_sim/info").json()["env"]["KLING_ACCESS_KEY"] == "sim-access-key"

    assert http.post("/_sim/reset").json() == {"ok": True}
    assert http.get("/_sim/tasks").json() == []
    assert http.get("/_sim/config").json()["callback_delay_s"] == 0


# -- several accounts per provider ------------------------------------------------------------------


def test_each_account_has_its_own_limit_tasks_and_in_flight_peaks() -> None:
    accounts = [
        SimAccount(provider="kling", name="a", key="ak-a", secret="sk-a", concurrency=1),
        SimAccount(provider="kling", name="b", key="ak-b", secret="sk-b", concurrency=2),
        SimAccount(provider="evolink", name="x", key="evo-x", concurrency=1),
        SimAccount(provider="evolink", name="y", key="evo-y", concurrency=1),
    ]
    with (
        SimulatorServer(config=SimConfig(generation_time_s=0.2), accounts=accounts) as simulator,
        httpx.Client(base_url=simulator.url, timeout=30) as http,
    ):
        as_a = {"authorization": f"Bearer {simulator.kling_jwt('a')}"}
        as_b = {"authorization": f"Bearer {simulator.kling_jwt('b')}"}
        first = http.post(OMNI, json=omni_body(prompt="a [sim:never]"), headers=as_a)
        assert first.status_code == 200
        full = http.post(OMNI, json=omni_body(prompt="a2"), headers=as_a)
        assert full.status_code == 429 and full.json()["code"] == 1303  # a's one slot is taken…
        for n in range(2):  # …b has its own two
            assert (
                http.post(OMNI, json=omni_body(prompt=f"b{n} [sim:never]"), headers=as_b).status_code == 200
            )
        assert http.post(OMNI, json=omni_body(prompt="b3"), headers=as_b).json()["code"] == 1303
        # A task is only visible to the account that created it (credentials are never interchangeable).
        task_id = first.json()["data"]["task_id"]
        assert http.get(f"{OMNI}/{task_id}", headers=as_a).status_code == 200
        assert http.get(f"{OMNI}/{task_id}", headers=as_b).status_code == 404
        # Gateways: the bearer key names the account.
        body = {"model": "kling-o3-text-to-video", "prompt": "x [sim:never]"}
        x_task = http.post("/v1/videos/generations", json=body, headers={"authorization": "Bearer evo-x"})
        assert x_task.status_code == 200
        assert (
            http.post(
                "/v1/videos/generations", json=body, headers={"authorization": "Bearer evo-x"}
            ).status_code
            == 429
        )
        assert (
            http.post(
                "/v1/videos/generations", json=body, headers={"authorization": "Bearer evo-y"}
            ).status_code
            == 200
        )
        assert (
            http.get(
                f"/v1/tasks/{x_task.json()['id']}", headers={"authorization": "Bearer evo-y"}
            ).status_code
            == 404
        )
        assert http.post("/v1/videos/generations", json=body, headers=EVOLINK_KEY).status_code == 401
        accounts_stats = simulator.stats()["accounts"]
        assert {key: value["max_in_flight"] for key, value in accounts_stats.items()} == {
            "evolink/x": 1,
            "evolink/y": 1,
            "kling/a": 1,
            "kling/b": 2,
        }
        assert accounts_stats["kling/a"]["throttled"] == 1 and accounts_stats["kling/b"]["throttled"] == 1
        # The knob can lower one account's limit live (an account shared with someone else).
        simulator.configure(concurrency_limit={"kling/b": 0})
        assert http.post(OMNI, json=omni_body(prompt="b4"), headers=as_b).json()["code"] == 1303
        env = simulator.provider_env()
        assert "KLING_ACCESS_KEY" not in env and "KLING3API_API_KEY" in env
        assert [a["name"] for a in json.loads(env["KLING_ACCOUNTS"])] == ["a", "b"]
        assert json.loads(env["EVOLINK_ACCOUNTS"])[0] == {"name": "x", "api_key": "evo-x", "concurrency": 1}
