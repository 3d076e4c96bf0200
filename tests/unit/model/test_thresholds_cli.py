import dataclasses
import json
from pathlib import Path

import pytest

from model.bundle import BUNDLE_FORMAT_VERSION
from model.thresholds import (
    ContextCuts,
    LiftCuts,
    default_thresholds,
    load_thresholds,
    save_thresholds,
)
from service.cli import main

ROSTER = ["jin", "suga"]


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    manifest = {"name": "cli-test", "roster": ROSTER, "format_version": BUNDLE_FORMAT_VERSION}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    save_thresholds(tmp_path, default_thresholds(ROSTER))
    return tmp_path


def test_context_command_sets_then_switches_off_the_context_cuts(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cuts = ["--min-named", "3", "--face", "0.2", "--gallery", "0.5"]

    set_code = main(["thresholds", "context", "--bundle", str(bundle_dir), *cuts])
    after_set = load_thresholds(bundle_dir, ROSTER)
    main(["thresholds", "show", "--bundle", str(bundle_dir)])
    shown = capsys.readouterr().out
    off_code = main(["thresholds", "context", "--bundle", str(bundle_dir), "--off"])

    assert set_code == off_code == 0
    assert after_set.context == ContextCuts(3, 0.2, 0.5)
    assert "context: after 3 faces named, face 0.200, gallery 0.500" in shown
    assert load_thresholds(bundle_dir, ROSTER).context is None


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["--off", "--face", "0.2"],
        ["--min-named", "2", "--face", "0.2"],
        ["--min-named", "0", "--face", "0.2", "--gallery", "0.5"],
        ["--min-named", "2", "--face", "1.5", "--gallery", "0.5"],
    ],
)
def test_context_command_refuses_incomplete_or_out_of_range_cuts(
    bundle_dir: Path, arguments: list[str]
) -> None:
    before = (bundle_dir / "thresholds.json").read_bytes()

    code = main(["thresholds", "context", "--bundle", str(bundle_dir), *arguments])

    assert code != 0
    assert (bundle_dir / "thresholds.json").read_bytes() == before


@pytest.fixture
def scene_bundle_dir(bundle_dir: Path) -> Path:
    with_image_cuts = dataclasses.replace(
        default_thresholds(ROSTER), image={"jin": 0.5, "suga": 0.6}
    )
    save_thresholds(bundle_dir, with_image_cuts)
    return bundle_dir


def test_lift_command_sets_then_switches_off_the_lift_cuts(
    scene_bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = str(scene_bundle_dir)

    set_code = main(
        ["thresholds", "lift", "--bundle", bundle, "--face", "0.2", "--image-share", "0.5"]
    )
    after_set = load_thresholds(scene_bundle_dir, ROSTER)
    main(["thresholds", "show", "--bundle", bundle])
    shown = capsys.readouterr().out
    off_code = main(["thresholds", "lift", "--bundle", bundle, "--off"])
    after_off = load_thresholds(scene_bundle_dir, ROSTER)

    assert set_code == off_code == 0
    assert after_set.lift == LiftCuts(0.2, 0.5)
    assert after_set.image == {"jin": 0.5, "suga": 0.6}
    assert "lift: face 0.200, image share 0.500" in shown
    assert after_off.lift is None
    assert after_off.digest() != after_set.digest()


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["--off", "--face", "0.2"],
        ["--face", "0.2"],
        ["--face", "1.5", "--image-share", "0.5"],
        ["--face", "0.2", "--image-share", "-0.1"],
    ],
)
def test_lift_command_refuses_incomplete_or_out_of_range_cuts(
    scene_bundle_dir: Path, arguments: list[str]
) -> None:
    before = (scene_bundle_dir / "thresholds.json").read_bytes()

    code = main(["thresholds", "lift", "--bundle", str(scene_bundle_dir), *arguments])

    assert code != 0
    assert (scene_bundle_dir / "thresholds.json").read_bytes() == before


def test_lift_command_refuses_a_bundle_without_image_cuts(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (bundle_dir / "thresholds.json").read_bytes()

    code = main(
        ["thresholds", "lift", "--bundle", str(bundle_dir), "--face", "0.2", "--image-share", "0.5"]
    )

    assert code != 0
    assert "no image cuts" in capsys.readouterr().err
    assert (bundle_dir / "thresholds.json").read_bytes() == before
