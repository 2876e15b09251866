"""The web page of `g2d serve` in a real browser: Debian's Chromium, headless, driven by Playwright (no browser is
downloaded). Load the page, give the key, enrol a person from real photos, see them named in the live view of a video
source, rename and remove them. A screenshot of the live view is kept as a test artefact
(.cache/test-artefacts/serve-live-view.png, or $G2D_TEST_ARTEFACTS/).

Without Chromium or Playwright the test is skipped on a developer machine and FAILS in CI ($CI set): CI must run it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from serve_helpers import API_KEY, in_ci, make_clip

CHROMIUM = os.environ.get("G2D_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[3]


def _browser_or_reason():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; the browser comes from Debian: apt-get install " \
               "chromium)"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set $G2D_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def chromium():
    reason = _browser_or_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"the browser test must run in CI, but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                                          "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        yield browser
        browser.close()


def artefact_dir() -> Path:
    folder = Path(os.environ.get("G2D_TEST_ARTEFACTS", REPO / ".cache" / "test-artefacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_page_enrols_names_in_the_live_view_renames_and_removes(chromium, server_factory, many_people, tmp_path):
    name, photos = list(many_people.items())[11]
    clip = make_clip(tmp_path / "door.avi", photos[3])  # a photo that is not enrolled
    server = server_factory("--gallery", tmp_path / "people.npz", "--source", clip, "--auth", "all")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    page.fill("#key", "wrong-key-000")
    page.click("#use-key")
    page.wait_for_selector("#message:has-text('refused')")
    page.fill("#key", API_KEY)
    page.click("#use-key")
    page.wait_for_selector("#key-state:has-text('key accepted')")
    page.wait_for_selector(".source .in-view:has-text('unknown')", timeout=60_000)  # live, nobody enrolled

    page.fill("#enrol-name", name)
    page.set_input_files("#enrol-files", [str(p) for p in photos[:3]])
    page.click("#enrol-button")
    page.wait_for_selector(f"#message:has-text('Enrolled {name}: 3 template(s) added')", timeout=60_000)
    row = page.locator(f"#people tr[data-name='{name}']")
    assert row.locator(".person-name").inner_text() == name
    assert row.locator("img").count() == 3  # thumbnails of the enrolled photos
    page.wait_for_selector(f".source .in-view.known:has-text('{name}')", timeout=90_000)
    page.wait_for_selector(f".source .log .known:has-text('{name}')", timeout=30_000)
    page.wait_for_function("() => document.querySelector('.source img.stream').naturalWidth > 0")
    shot = artefact_dir() / "serve-live-view.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    row.locator(".rename-input").fill("Grace Hopper")
    row.locator(".rename-button").click()
    page.wait_for_selector("#people tr[data-name='Grace Hopper']")
    assert page.locator(f"#people tr[data-name='{name}']").count() == 0
    page.locator("#people tr[data-name='Grace Hopper'] .remove-button").click()
    page.wait_for_selector("#message:has-text('Removed Grace Hopper')")
    # the page says "Removed" and then lists the people again: the table empties once that list arrives
    from playwright.sync_api import expect

    expect(page.locator("#people tr")).to_have_count(0)

    # the browser's camera (Chromium's fake device: a test pattern, no face): the photo taken reaches the server as a
    # real JPEG, which answers that it holds no usable face
    page.click("#camera-start")
    page.wait_for_function("() => document.querySelector('#camera').videoWidth > 0")
    page.click("#camera-take")
    page.wait_for_selector("#camera-count:has-text('1 photo(s) taken')")
    page.fill("#enrol-name", "camera person")
    page.click("#enrol-button")
    page.wait_for_selector("#message:has-text('usable face')", timeout=60_000)
    assert page.locator("#message").inner_text().startswith("Enrolment failed: 422")
    assert errors == []


def test_answers_to_the_first_load_that_arrive_late_do_not_hide_that_the_key_was_refused(chromium, server_factory,
                                                                                          tmp_path):
    """The page lists people and sources as it loads, without a key; under --auth all both answers are 401. When they
    arrive after the user's wrong key was refused, the refusal must stay on screen (a CI run saw it overwritten)."""
    server = server_factory("--gallery", tmp_path / "people.npz", "--auth", "all")
    page = chromium.new_page()
    held = []

    def hold_first_list_of_people(route):
        if route.request.method == "GET" and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/people", hold_first_list_of_people)
    page.goto(server.url + "/")
    page.fill("#key", "wrong-key-000")
    page.click("#use-key")
    page.wait_for_selector("#message:has-text('refused')")
    assert len(held) == 1
    with page.expect_response(lambda response: response.url.endswith("/sources")) as sources:
        held[0].continue_()  # the load's 401 for /people arrives now; then the load asks for the sources
    assert sources.value.status in (401, 403)  # 403: it is sent with the wrong key stored by then
    page.wait_for_timeout(300)  # the page has handled both late answers by now
    assert page.locator("#message").inner_text().startswith("The key was refused")
