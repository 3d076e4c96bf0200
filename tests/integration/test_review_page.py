"""Label a small collection of real photos, then review it in headless Chromium.

The collection is made from ../shared/datasets (read in place; crops go to a temporary
folder): for two members, photos of one face each and one group photo. `memberlens label`
runs for real (MTCNN and the dlib face body), then `memberlens review` serves the page on
127.0.0.1 and Chromium drives it with the keyboard, as a person would.
"""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Page, sync_playwright

from data_tools.voc import read_voc_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PHOTOS = REPO_ROOT / ".." / "shared" / "datasets" / "bts-group-photos"
ROSTER = REPO_ROOT / "rosters" / "bts.yaml"
CHROMIUM = Path("/usr/bin/chromium")
MEMBERS = ("jimin", "v")
SOLE_PHOTOS_PER_MEMBER = 3
# Roster order of rosters/bts.yaml: the key that relabels a face as this member.
RELABEL_KEY = {"jhope": "1", "jimin": "2", "jin": "3", "jungkook": "4", "rm": "5", "v": "7"}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
)


def _memberlens(*arguments: str, timeout_s: float = 300) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "service.cli", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "MEMBERLENS_LOG_FORMAT": "text"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def _make_collection(folder: Path) -> None:
    """Crops of one face of each member, plus one group photo per member, from shared photos."""
    if not SHARED_PHOTOS.is_dir():
        pytest.fail(f"the shared photos are missing at {SHARED_PHOTOS}; tests read them in place")
    labelled = read_voc_folder(SHARED_PHOTOS).photos
    used: set[Path] = set()
    for member in MEMBERS:
        target = folder / "photos" / member
        target.mkdir(parents=True)
        made = 0
        for photo in labelled:
            boxes = [box.box for box in photo.boxes if box.member == member]
            is_small = (
                min(boxes[0][2] - boxes[0][0], boxes[0][3] - boxes[0][1]) < 70 if boxes else True
            )
            if len(boxes) != 1 or is_small or photo.path in used:
                continue
            used.add(photo.path)
            if made < SOLE_PHOTOS_PER_MEMBER:
                _save_crop(photo.path, boxes[0], target / f"{member}-{made}.jpg")
            else:
                shutil.copyfile(photo.path, target / f"group{photo.path.suffix.lower()}")
                break
            made += 1


def _save_crop(path: Path, box: tuple[float, float, float, float], target: Path) -> None:
    x_min, y_min, x_max, y_max = box
    # A small margin: labelled boxes hold the whole head, and neighbours must stay out.
    margin = 0.15 * max(x_max - x_min, y_max - y_min)
    with Image.open(path) as image:
        crop = image.convert("RGB").crop(
            (
                max(0, int(x_min - margin)),
                max(0, int(y_min - margin)),
                min(image.width, int(x_max + margin)),
                min(image.height, int(y_max + margin)),
            )
        )
    scale = max(1.0, 160 / min(crop.size))
    crop.resize((round(crop.width * scale), round(crop.height * scale))).save(target, quality=92)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("collection")
    _make_collection(folder)
    summary = _memberlens("label", str(folder), "--roster", str(ROSTER))
    assert "proposals flagged for review" in summary
    return folder


@pytest.fixture(scope="module")
def review_url(collection: Path) -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "review", str(collection), "--roster", str(ROSTER),
         "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/faces", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("review server did not start: " + server.communicate()[1].decode()[-2000:])
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        yield context
        context.close()


def _proposals(collection: Path) -> list[dict[str, object]]:
    document = json.loads((collection / "labelled" / "proposals.json").read_text("utf-8"))
    return list(document["faces"])


def _manifest(collection: Path) -> dict[str, str]:
    with (collection / "labelled" / "faces.csv").open(encoding="utf-8") as stream:
        return {row["chip"]: row["labels"] for row in csv.DictReader(stream)}


def _press_and_wait(page: Page, key: str, saved_text: str) -> None:
    page.keyboard.press(key)
    page.wait_for_selector(f"#status:has-text('{saved_text}')", timeout=5000)


def test_label_proposes_the_searched_member_and_flags_group_photos(collection: Path) -> None:
    faces = _proposals(collection)

    proposed = [face for face in faces if face["proposed"]]
    assert {face["searched"] for face in proposed} == set(MEMBERS)
    group_proposals = [
        face for face in proposed if str(face["photo"]).split("/")[-1].startswith("group")
    ]
    assert len(group_proposals) == 2
    assert all("several-faces" in face["flags"] for face in group_proposals)
    assert len(_manifest(collection)) >= 4  # unflagged sole faces train at once


def test_keyboard_review_confirms_relabels_and_rewrites_the_manifest(
    collection: Path, review_url: str, browser: BrowserContext, tmp_path: Path
) -> None:
    page = browser.new_page()
    page.goto(review_url + "/")
    page.wait_for_selector("#queue li")
    flagged = [face for face in _proposals(collection) if face["flags"]]
    assert page.locator("#queue li").count() == len(flagged)
    first = flagged[0]
    assert first["chip"] not in _manifest(collection)

    _press_and_wait(page, "Enter", "saved: confirmed")

    assert _manifest(collection)[str(first["chip"])] == first["member"]
    assert _proposals(collection)[0]["decision"] in ("confirmed", "")  # order kept
    decided = {face["face_id"]: face for face in _proposals(collection)}
    assert decided[first["face_id"]]["decision"] == "confirmed"

    # A face that trains as its searched member, relabelled as another: the manifest changes.
    page.keyboard.press("a")
    sole = next(face for face in _proposals(collection) if face["proposed"] and not face["flags"])
    assert _manifest(collection)[str(sole["chip"])] == sole["searched"]
    page.click(f"#queue li[data-face-id='{sole['face_id']}']")
    _press_and_wait(page, RELABEL_KEY["rm"], "saved: relabelled as rm")

    assert _manifest(collection)[str(sole["chip"])] == "rm"
    page.screenshot(path=str(tmp_path / "review.png"))

    page.click(f"#queue li[data-face-id='{sole['face_id']}']")
    _press_and_wait(page, "n", "saved: not-a-member")
    assert _manifest(collection)[str(sole["chip"])] == ""
    page.click(f"#queue li[data-face-id='{sole['face_id']}']")
    _press_and_wait(page, "x", "saved: deleted")
    assert str(sole["chip"]) not in _manifest(collection)
    page.click(f"#queue li[data-face-id='{sole['face_id']}']")
    _press_and_wait(page, "u", "saved: decision undone")
    assert _manifest(collection)[str(sole["chip"])] == sole["searched"]
    page.close()


def test_review_server_refuses_foreign_hosts_and_non_json_decisions(
    collection: Path, review_url: str
) -> None:
    face_id = _proposals(collection)[0]["face_id"]
    decision_url = f"{review_url}/api/faces/{face_id}/decision"

    foreign = httpx.get(review_url + "/api/faces", headers={"Host": "evil.example"})
    as_text = httpx.post(decision_url, content=b'{"decision": "deleted", "member": ""}',
                         headers={"Content-Type": "text/plain"})  # fmt: skip
    unknown = httpx.post(
        f"{review_url}/api/faces/nope/decision", json={"decision": "deleted", "member": ""}
    )
    bad_member = httpx.post(decision_url, json={"decision": "relabelled", "member": "zed"})

    assert foreign.status_code == 400
    assert as_text.status_code == 415
    assert unknown.status_code == 404
    assert bad_member.status_code == 422
    assert {face["face_id"]: face for face in _proposals(collection)}[face_id][
        "decision"
    ] != "deleted"
