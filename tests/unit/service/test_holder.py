"""Test live reload: a new bundle is swapped in after it loaded, a broken one is refused."""

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from litestar.testing import TestClient

from data_tools.errors import BundleLoadError
from model.results import Identifier
from service.holder import ModelHolder, bundle_stamp
from service.settings import ReloadSettings

from .conftest import FakeIdentifier, image_file, serve


def write_bundle(bundle_dir: Path, name: str, weights: bytes = b"weights") -> None:
    """Write a fake bundle: a manifest naming it and a weights file."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    (bundle_dir / "manifest.json").write_text(json.dumps({"name": name}))
    (bundle_dir / "weights.bin").write_bytes(weights)


def load_fake_bundle(bundle_dir: Path) -> Identifier:
    """Load the fake bundle: an identifier named after its manifest, or BundleLoadError."""
    try:
        name = json.loads((bundle_dir / "manifest.json").read_text())["name"]
    except (OSError, ValueError, KeyError) as err:
        raise BundleLoadError(f"{bundle_dir}/manifest.json is unreadable: {err}") from err
    return FakeIdentifier(bundle=name)


def _bundle_name(holder: ModelHolder) -> str | None:
    info = holder.model_info()
    return info["bundle"] if info else None


def _check_twice(holder: ModelHolder) -> list[bool]:
    async def check() -> list[bool]:
        return [await holder.check_for_new_bundle(), await holder.check_for_new_bundle()]

    return anyio.run(check)


def _loaded_holder(bundle_dir: Path) -> ModelHolder:
    holder = ModelHolder(bundle_dir, load_fake_bundle, warm_up=False)
    anyio.run(holder.load)
    return holder


def test_changed_bundle_is_swapped_in_once_it_has_settled(tmp_path: Path) -> None:
    write_bundle(tmp_path, "first")
    holder = _loaded_holder(tmp_path)

    write_bundle(tmp_path, "second", weights=b"new weights")
    swapped = _check_twice(holder)

    assert swapped == [False, True]
    assert _bundle_name(holder) == "second"
    assert holder.reloads_succeeded == 1
    assert holder.last_reload_error is None


def test_unchanged_bundle_is_not_loaded_again(tmp_path: Path) -> None:
    loads: list[Path] = []

    def load(bundle_dir: Path) -> Identifier:
        loads.append(bundle_dir)
        return load_fake_bundle(bundle_dir)

    write_bundle(tmp_path, "first")
    holder = ModelHolder(tmp_path, load, warm_up=False)
    anyio.run(holder.load)

    _check_twice(holder)

    assert loads == [tmp_path]


def test_broken_bundle_keeps_the_old_one_and_says_why(tmp_path: Path) -> None:
    write_bundle(tmp_path, "first")
    holder = _loaded_holder(tmp_path)

    (tmp_path / "manifest.json").write_text("{half a manif")
    swapped = _check_twice(holder)

    assert swapped == [False, False]
    assert _bundle_name(holder) == "first"
    assert holder.reloads_failed == 1
    assert holder.last_reload_error is not None
    assert "unreadable" in holder.last_reload_error


def test_broken_bundle_is_not_retried_until_it_changes_again(tmp_path: Path) -> None:
    write_bundle(tmp_path, "first")
    holder = _loaded_holder(tmp_path)
    (tmp_path / "manifest.json").write_text("{half a manif")
    _check_twice(holder)

    _check_twice(holder)
    failures_before_fix = holder.reloads_failed
    write_bundle(tmp_path, "fixed", weights=b"fixed weights")
    _check_twice(holder)

    assert failures_before_fix == 1
    assert _bundle_name(holder) == "fixed"
    assert holder.last_reload_error is None


def test_bundle_that_appears_later_makes_the_service_ready(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    holder = _loaded_holder(bundle_dir)
    reason_at_start = holder.not_loaded_reason

    write_bundle(bundle_dir, "late")
    _check_twice(holder)

    assert "failed to load" in reason_at_start
    assert _bundle_name(holder) == "late"


def test_thresholds_file_alone_does_not_reload_the_bundle(tmp_path: Path) -> None:
    write_bundle(tmp_path, "first")
    before = bundle_stamp(tmp_path)

    (tmp_path / "thresholds.json").write_text("{}")

    assert bundle_stamp(tmp_path) == before


def test_swapped_folder_is_seen_even_with_the_same_files(tmp_path: Path) -> None:
    write_bundle(tmp_path / "bundle", "first")
    before = bundle_stamp(tmp_path / "bundle")

    (tmp_path / "bundle").rename(tmp_path / "old")
    write_bundle(tmp_path / "bundle", "first")

    assert bundle_stamp(tmp_path / "bundle") != before


def test_requests_during_a_reload_are_answered_by_the_old_model(tmp_path: Path) -> None:
    write_bundle(tmp_path, "first")
    loading = threading.Event()
    release = threading.Event()

    def slow_load(bundle_dir: Path) -> Identifier:
        identifier = load_fake_bundle(bundle_dir)
        if identifier.model_info["bundle"] == "second":
            loading.set()
            release.wait(timeout=10)
        return identifier

    reload = ReloadSettings(interval_s=0.02)
    with serve(bundle=tmp_path, load_identifier=slow_load, reload=reload) as client:
        write_bundle(tmp_path, "second", weights=b"new weights")
        assert loading.wait(timeout=10)
        during = [client.post("/v1/identify", files=image_file()) for _ in range(3)]
        release.set()
        after = _wait_for_bundle(client, "second")

    assert [response.status_code for response in during] == [200, 200, 200]
    assert {response.json()["model"]["bundle"] for response in during} == {"first"}
    assert after["model"]["bundle"] == "second"


def test_readyz_reports_a_refused_reload_while_staying_ready(tmp_path: Path) -> None:
    write_bundle(tmp_path, "first")
    reload = ReloadSettings(interval_s=0.02)

    with serve(bundle=tmp_path, load_identifier=load_fake_bundle, reload=reload) as client:
        (tmp_path / "manifest.json").write_text("{half a manif")
        body = _wait_for(
            lambda: client.get("/readyz").json(), lambda body: body["last_reload_error"] is not None
        )
        answer = client.post("/v1/identify", files=image_file())

    assert body["status"] == "ready"
    assert body["model"]["bundle"] == "first"
    assert "unreadable" in body["last_reload_error"]
    assert answer.json()["model"]["bundle"] == "first"


def _wait_for_bundle(client: TestClient[Any], name: str) -> dict[str, Any]:
    return _wait_for(
        lambda: client.post("/v1/identify", files=image_file()).json(),
        lambda body: body["model"]["bundle"] == name,
    )


def _wait_for(
    get: Callable[[], dict[str, Any]], is_done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = get()
        if is_done(body):
            return body
        time.sleep(0.02)
    pytest.fail("the service did not change within 10 s")
