"""Drive the web page in headless Chromium against the live server: upload a photo, see boxes.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright for Python; the page talks
only to the server on 127.0.0.1.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .conftest import GROUP_PHOTOS
from .service_server import LiveServer, live_server, memberlens_serve_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE_VIEWPORT = {"width": 390, "height": 844}
# A group photo of the shared set in which the detector finds several faces.
PHOTO_NAME = "27 Best BTS Moments of 2019 _ Teen Vogue.jpg"
ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def page_server(
    small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The live server with the small bundle."""
    log_dir = tmp_path_factory.mktemp("page-server")
    env = {"MEMBERLENS_RELOAD__INTERVAL_S": "0"}
    with live_server(memberlens_serve_command(small_bundle), log_dir, env, "/readyz") as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Debian's headless Chromium with a fresh profile."""
    if not CHROMIUM.is_file() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium package is needed: apt-get install chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield context.browser or _fail_without_browser()
        context.close()


def _fail_without_browser() -> Browser:
    pytest.fail("Chromium started without a browser object")


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    """A page the size of a phone screen."""
    context = browser.new_context(viewport=PHONE_VIEWPORT, device_scale_factor=2, has_touch=True)
    page = context.new_page()
    yield page
    context.close()


def _expected_answer(server: LiveServer, photo: Path) -> dict[str, Any]:
    files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
    response = httpx.post(f"{server.base_url}/v1/identify", files=files, timeout=120)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def test_uploaded_photo_is_shown_with_a_box_per_face(
    page_server: LiveServer, phone_page: Page, tmp_path: Path
) -> None:
    photo = GROUP_PHOTOS / "images" / PHOTO_NAME
    expected = _expected_answer(page_server, photo)
    assert len(expected["faces"]) >= 2, "the test photo should hold several detected faces"

    phone_page.goto(page_server.base_url + "/")
    phone_page.set_input_files("#photo-input", str(photo))
    boxes = phone_page.locator("#boxes .face-box")
    expect(boxes).to_have_count(len(expected["faces"]), timeout=ANSWER_TIMEOUT_MS)
    phone_page.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)

    page_width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= PHONE_VIEWPORT["width"], "the page must not scroll sideways on a phone"
    frame = phone_page.locator("#photo-frame").bounding_box()
    first = boxes.first.bounding_box()
    assert frame is not None and first is not None
    assert frame["width"] <= PHONE_VIEWPORT["width"]
    assert (
        frame["x"] <= first["x"] and first["x"] + first["width"] <= frame["x"] + frame["width"] + 1
    )
    names = [face["member"] or "unknown" for face in expected["faces"]]
    shown = phone_page.locator("#boxes .face-box .name").all_text_contents()
    assert sorted(shown) == sorted(names)
    assert phone_page.locator("#status").text_content() == (
        f"{len(expected['faces'])} face(s) found, "
        f"{sum(face['member'] is not None for face in expected['faces'])} named."
    )


def test_tapping_a_box_shows_its_candidates(page_server: LiveServer, phone_page: Page) -> None:
    photo = GROUP_PHOTOS / "images" / PHOTO_NAME

    phone_page.goto(page_server.base_url + "/")
    phone_page.set_input_files("#photo-input", str(photo))
    first = phone_page.locator("#boxes .face-box").first
    expect(first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    candidates = first.locator(".candidates")
    hidden_before = candidates.is_hidden()
    first.tap()

    expect(candidates).to_be_visible()
    assert hidden_before
    assert candidates.locator("li").count() >= 1


def test_members_from_the_whole_image_are_listed_apart(
    page_server: LiveServer, phone_page: Page
) -> None:
    photo = GROUP_PHOTOS / "images" / PHOTO_NAME

    phone_page.goto(page_server.base_url + "/")
    phone_page.set_input_files("#photo-input", str(photo))

    expect(phone_page.locator("#result")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(phone_page.locator("#image-members li").first).to_be_visible()
    expect(phone_page.locator("#face-members li").first).to_be_visible()


def test_an_error_answer_is_shown_as_its_message(
    page_server: LiveServer, phone_page: Page, tmp_path: Path
) -> None:
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("just some text")

    phone_page.goto(page_server.base_url + "/")
    phone_page.set_input_files("#photo-input", str(not_a_photo))

    status = phone_page.locator("#status.error")
    expect(status).to_contain_text("text file", timeout=ANSWER_TIMEOUT_MS)
    expect(phone_page.locator("#result")).to_be_hidden()
