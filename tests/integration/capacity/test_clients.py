"""A generation waiting for a slot, as users see it: the CLI and the playground show its place in line and
its estimated start (the API's `queue_position` and `estimated_start_at`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kling_local.stack.runner import LocalStack
from kling_pipeline.store.slots import get_slot_store
from tests.integration.capacity.conftest import KEY_A, SLOTS
from tests.integration.capacity.test_capacity import create, wait_all_terminal
from tests.integration.pipeline.test_playground import CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.integration

COMMAND = str(Path(sys.executable).parent / "kling-pipeline")
HOLD_S = 20  # how long the stand-in holders keep every slot (released at the end of each test)


@pytest.fixture
def all_slots_busy(sim: Any) -> Iterator[Callable[[], None]]:
    """Every slot of both accounts held by stand-in holders (what the test creates waits in line) until
    the test frees them (the queued generation's own timer then starts it)."""
    slots = get_slot_store()
    holders = [(account, f"gen_busy_{account}{n}") for account in ("a", "b") for n in range(SLOTS)]
    for account, holder in holders:
        assert slots.acquire(slots.view("kling", account, SLOTS), holder, lease_s=HOLD_S) is not None

    def free() -> None:
        for account, holder in holders:
            slots.release("kling", account, holder, limit=SLOTS)

    yield free
    free()


def test_the_cli_shows_a_queued_generations_place_and_estimated_start(
    stack: LocalStack, api: httpx.Client, all_slots_busy: Callable[[], None]
) -> None:
    queued = create(api, "waits for a slot")
    assert queued["status"] == "queued"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KLING_PIPELINE_")},
        "KLING_PIPELINE_URL": stack.api_url,
        "KLING_PIPELINE_API_KEY": KEY_A,
    }
    shown = subprocess.run(
        [COMMAND, "get", queued["id"]],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    line = next(text for text in shown.stdout.splitlines() if text.strip().startswith("queue"))
    assert re.search(r"position 1, estimated start \d\d:\d\d:\d\d UTC \(in ~\d+ (s|min)\)", line), line
    all_slots_busy()
    wait_all_terminal(api, [queued["id"]])


@pytest.fixture
def page(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("NO CHROMIUM: the playground browser tests did not run (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            bypass_csp=True,  # the test's own probes are eval'd scripts (the pipeline tests check the CSP)
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{stack.api_url}/playground")
        page.locator("#api-key").fill(KEY_A)
        yield page
        context.close()


def test_the_playground_shows_a_queued_generations_place_and_estimated_start(
    page: Any, api: httpx.Client, all_slots_busy: Callable[[], None]
) -> None:
    page.get_by_label("Mode", exact=True).select_option("text-to-video")
    page.get_by_label("Prompt", exact=True).fill("A queue of lanterns")
    page.get_by_label("Duration (s)", exact=True).fill("3")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#history li')].some("
        "(li) => /queue position 1 · starts ~.+\\(in ~\\d+ (s|min)\\)/.test(li.textContent))"
    )
    generation_id = page.eval_on_selector(
        "#history li[data-status='queued']", "li => li.dataset.id"
    )  # the one just made
    all_slots_busy()
    wait_all_terminal(api, [generation_id])
