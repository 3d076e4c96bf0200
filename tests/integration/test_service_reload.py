"""Live reload on the live server with a real bundle: no failed request while bundles change.

A copy of the small bundle is served with a short reload interval while a client keeps
sending a real photo. New thresholds, then a new bundle, then a broken bundle are written;
every answer must be a 200 naming the bundle and thresholds it used.
"""

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import GROUP_PHOTOS
from .service_server import LiveServer, live_server, memberlens_serve_command

PHOTOS = GROUP_PHOTOS / "images"
CHANGE_TIMEOUT_S = 90.0


class Client(threading.Thread):
    """Send one photo to the server again and again, keeping every answer's status and model."""

    def __init__(self, server: LiveServer, photo: bytes) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.photo = photo
        self.answers: list[tuple[int, dict[str, Any] | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.server.base_url, timeout=120) as client:
            while not self.stopping.is_set():
                files = {"image": ("photo.jpg", self.photo, "image/jpeg")}
                response = client.post("/v1/identify?landmarks=false", files=files)
                model = response.json().get("model") if response.status_code == 200 else None
                self.answers.append((response.status_code, model))

    def latest_model(self) -> dict[str, Any] | None:
        return self.answers[-1][1] if self.answers else None


def _write_atomic(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.new")
    staging.write_text(text)
    staging.replace(path)


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CHANGE_TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {CHANGE_TIMEOUT_S} s")


def _smallest_photo() -> bytes:
    return min(PHOTOS.iterdir(), key=lambda path: path.stat().st_size).read_bytes()


def test_new_thresholds_and_bundles_are_picked_up_without_a_failed_request(
    small_bundle: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle, bundle)
    env = {"MEMBERLENS_RELOAD__INTERVAL_S": "0.5"}

    with live_server(memberlens_serve_command(bundle), tmp_path, env, "/readyz") as server:
        client = Client(server, _smallest_photo())
        client.start()
        _wait_until(lambda: client.latest_model() is not None, "a first answer")
        first = client.latest_model()
        assert first is not None

        thresholds = json.loads((bundle / "thresholds.json").read_text())
        thresholds["face"] = {member: 0.99 for member in thresholds["face"]}
        _write_atomic(bundle / "thresholds.json", json.dumps(thresholds))
        _wait_until(
            lambda: (client.latest_model() or first)["thresholds"] != first["thresholds"],
            "the new thresholds",
        )

        manifest = json.loads((bundle / "manifest.json").read_text())
        _write_atomic(bundle / "manifest.json", json.dumps({**manifest, "name": "reloaded"}))
        _wait_until(
            lambda: (client.latest_model() or first)["bundle"] == "reloaded", "the new bundle"
        )

        weights = next(bundle.glob("*.safetensors"))
        weights.with_name(".broken").write_bytes(b"not a tensor file")
        weights.with_name(".broken").replace(weights)
        _wait_until(
            lambda: httpx.get(server.base_url + "/readyz").json()["last_reload_error"] is not None,
            "the broken bundle to be refused",
        )
        answers_before_stop = len(client.answers)
        time.sleep(1.0)
        client.stopping.set()
        client.join(timeout=120)
        ready = httpx.get(server.base_url + "/readyz").json()
        log = server.log()

    statuses = {status for status, _ in client.answers}
    assert statuses == {200}, f"{len(client.answers)} answers with statuses {statuses}"
    assert len(client.answers) > answers_before_stop >= 3
    assert client.answers[-1][1] is not None
    assert client.answers[-1][1]["bundle"] == "reloaded"
    assert ready["status"] == "ready"
    assert ready["model"]["bundle"] == "reloaded"
    assert "bundle reload failed, keeping the bundle in use" in log
