"""The playground page in a real browser: Debian's Chromium driven by Playwright (the Python package
only drives; its own browser download is not used).

Without a Chromium these tests skip, and `make test` says so loudly; `.ci/run` installs it, so CI runs
them for real. Set PLAYGROUND_SCREENSHOTS=docs to refresh the README's screenshots.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kling_local.demo import png
from kling_local.stack.runner import LocalStack

from .conftest import KEY_B

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("NO CHROMIUM: the playground browser tests did not run (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            # The tests' own probes (wait_for_function, evaluate) are eval'd scripts, which the page's
            # CSP rightly forbids; test_the_page_works_under_its_own_csp runs without this bypass.
            bypass_csp=True,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser_context: Any, stack: LocalStack, sim: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{stack.api_url}/playground")
    page.locator("#api-key").fill(KEY_B)
    yield page
    page.close()


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    target = Path(os.environ.get("PLAYGROUND_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def drop_file(page: Any, target: str, name: str, data: bytes, mime: str) -> None:
    """A real drop event on the input's drop zone, carrying a File, as a user dragging from the desktop."""
    page.evaluate(
        """([target, name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            const zone = document.querySelector(`.drop[data-target="${target}"]`);
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [target, name, base64.b64encode(data).decode(), mime],
    )


def submitted_id(page: Any, before: set[str]) -> str:
    page.wait_for_function(
        "(before) => [...document.querySelectorAll('#history li')].some((li) => !before.includes(li.dataset.id))",
        arg=sorted(before),
    )
    ids = set(page.eval_on_selector_all("#history li", "items => items.map(li => li.dataset.id)"))
    [new] = ids - before
    return str(new)


def history_ids(page: Any) -> set[str]:
    return set(page.eval_on_selector_all("#history li", "items => items.map(li => li.dataset.id)"))


def test_text_and_image_to_video_finish_in_the_history_and_play(page: Any, tmp_path: Path) -> None:
    # Text to video, with the live price shown before submitting
    page.get_by_label("Mode", exact=True).select_option("text-to-video")
    page.get_by_label("Prompt", exact=True).fill("A lighthouse at dawn, waves rolling in")
    page.get_by_label("Duration (s)", exact=True).fill("3")
    page.wait_for_function("document.getElementById('price-total').textContent.startsWith('$')")
    assert "per second" in page.locator("#price-per-second").inner_text()
    page.wait_for_function("document.querySelectorAll('#history li').length >= 0")
    before = history_ids(page)
    page.get_by_role("button", name="Generate").click()
    text_id = submitted_id(page, before)

    # Image to video, its first frame dropped onto the page and uploaded through /v1/uploads
    page.get_by_label("Mode", exact=True).select_option("image-to-video")
    page.get_by_label("Prompt", exact=True).fill("The portrait slowly turns and smiles")
    drop_file(page, "first_frame", "portrait.png", png(720, 960), "image/png")
    page.wait_for_function("document.getElementById('first_frame').value.startsWith('s3://')")
    assert "uploaded portrait.png" in page.locator(".drop[data-target=first_frame] .status").inner_text()
    before = history_ids(page)
    page.get_by_role("button", name="Generate").click()
    image_id = submitted_id(page, before)

    # Both finish in the history, with their videos playable
    for generation_id in (text_id, image_id):
        page.wait_for_selector(f"#h-{generation_id}[data-status=succeeded] video")
    counts = page.locator(".counts").inner_text()
    statuses = page.eval_on_selector_all("#history li", "items => items.map(li => li.dataset.status)")
    assert f"{statuses.count('succeeded')} completed" in counts
    duration = page.eval_on_selector(
        f"#h-{image_id} video",
        """async (video) => {
            if (video.readyState < 1) await new Promise((ok, fail) => {
                video.addEventListener('loadedmetadata', ok, { once: true });
                video.addEventListener('error', () => fail(new Error('video error ' + (video.error && video.error.code))), { once: true });
            });
            video.muted = true;
            await video.play();
            return video.duration;
        }""",
    )
    assert duration > 0
    screenshot(page, "playground.png", tmp_path)


def test_a_field_error_is_shown_next_to_its_field(page: Any, tmp_path: Path) -> None:
    page.get_by_label("Mode", exact=True).select_option("text-to-video")
    page.get_by_label("Prompt", exact=True).fill("Too long a video")
    page.get_by_label("Duration (s)", exact=True).fill("99")
    before = history_ids(page)
    page.get_by_role("button", name="Generate").click()

    page.wait_for_function("document.getElementById('err-duration').textContent.length > 0")
    assert page.get_by_label("Duration (s)", exact=True).get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Duration (s)", exact=True).get_attribute("aria-describedby") == "err-duration"
    assert "duration" not in page.locator("#err-prompt").inner_text()
    assert history_ids(page) == before
    # Fixing it clears nothing by magic, but a valid submit does
    page.get_by_label("Duration (s)", exact=True).fill("3")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("document.getElementById('err-duration').textContent === ''")


def test_every_control_is_labelled_and_the_page_fits_a_phone(page: Any, tmp_path: Path) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map((el) => el.id || el.outerHTML.slice(0, 60))"""
    )
    assert unlabelled == []
    # Keyboard: tabbing from the key field reaches the form's controls in order
    page.locator("#api-key").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "mode"

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "playground-phone.png", tmp_path)


def test_the_page_works_under_its_own_csp(browser_context: Any, stack: LocalStack, sim: Any) -> None:
    from playwright.sync_api import expect

    # A second context of the same browser, this one enforcing the page's Content-Security-Policy.
    strict = browser_context.browser.new_context()
    page = strict.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{stack.api_url}/playground")
    page.locator("#api-key").fill(KEY_B)
    page.get_by_label("Prompt", exact=True).fill("A quiet forest")
    expect(page.locator("#price-total")).to_have_text(re.compile(r"^\$\d"), timeout=TIMEOUT_MS)
    assert violations == []
    strict.close()
