"""Tests of `memberlens prepare` on a tiny synthetic folder, with a fake face detector."""

import argparse
import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from data_tools import prepare, prepare_cli
from data_tools.align import LANDMARK_TEMPLATE_150
from data_tools.errors import DatasetError
from data_tools.faces import Face
from data_tools.prepare import PrepareOptions, PrepareReport, prepare_dataset
from service.settings import Settings

Box = tuple[float, float, float, float]


def _face_in(box: Box, score: float = 0.99) -> Face:
    """A face whose template landmarks are scaled into `box`."""
    x_min, y_min, x_max, y_max = box
    landmarks = LANDMARK_TEMPLATE_150 / 150 * [x_max - x_min, y_max - y_min] + [x_min, y_min]
    return Face(box=box, landmarks=landmarks.astype(np.float32), detection_score=score)


@dataclass
class FakeDetector:
    """Finds the faces listed for a photo's (height, width), and none elsewhere."""

    faces_by_size: dict[tuple[int, int], list[Face]]

    def detect(self, photo: NDArray[np.uint8]) -> list[Face]:
        return list(self.faces_by_size.get(photo.shape[:2], []))


def _scene(seed: int, size: tuple[int, int]) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)


def _annotation(filename: str, size: tuple[int, int], objects: list[tuple[str, Box]]) -> str:
    elements = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
        f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
        for name, box in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height></size>{elements}</annotation>"
    )


@dataclass
class Fixture:
    """Paths of the synthetic dataset and the fake detector that goes with it."""

    photos: Path
    strangers: Path
    detector: FakeDetector

    def options(self, out: Path, **changes: object) -> PrepareOptions:
        base = PrepareOptions(photos_folder=self.photos, out_folder=out, seed=0, valid_share=0.5)
        return replace(base, **changes)  # type: ignore[arg-type]


def _write_group_photos(folder: Path) -> dict[tuple[int, int], list[Face]]:
    images, annotations = folder / "images", folder / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    heads: list[tuple[str, Box]] = [("jin", (10, 10, 90, 110)), ("v", (100, 10, 190, 110))]
    small_heads: list[tuple[str, Box]] = [
        (name, (x0 / 2, y0 / 2, x1 / 2, y1 / 2)) for name, (x0, y0, x1, y1) in heads
    ]
    _scene(1, (200, 160)).save(images / "a.jpg", quality=95)
    _scene(1, (100, 80)).save(images / "a-small-copy.png")
    _scene(2, (240, 180)).save(images / "c.jpg")
    _scene(3, (220, 170)).save(images / "unlabelled.jpg")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    files = {
        "a.xml": _annotation("a.jpg", (200, 160), heads),
        "a-small-copy.xml": _annotation("a-small-copy.png", (100, 80), small_heads),
        "c.xml": _annotation("c.jpg", (240, 180), [("rm", (50, 40, 130, 150))]),
        "broken.xml": _annotation("broken.jpg", (200, 160), heads),
        "orphan.xml": _annotation("gone.jpg", (200, 160), heads),
    }
    for name, text in files.items():
        (annotations / name).write_text(text, encoding="utf-8")
    return {
        (160, 200): [
            _face_in((25, 45, 75, 105)),
            _face_in((115, 45, 165, 105)),
            _face_in((60, 120, 80, 150), score=0.8),  # a face nobody labelled
        ],
        (80, 100): [_face_in((12.5, 22.5, 37.5, 52.5)), _face_in((57.5, 22.5, 82.5, 52.5))],
    }


def _write_strangers(folder: Path) -> dict[tuple[int, int], list[Face]]:
    for source_index, source in enumerate(("idols", "web")):
        for person_index in range(4):
            person = folder / source / f"person-{person_index}"
            person.mkdir(parents=True)
            for photo_index in range(3):
                seed = 100 + 20 * source_index + 4 * person_index + photo_index
                _scene(seed, (100, 100)).save(person / f"{photo_index}.jpg")
    _scene(999, (90, 90)).save(folder / "web" / "person-0" / "faceless.jpg")
    return {
        (100, 100): [
            _face_in((2, 2, 30, 30), score=0.999),  # a bystander in the corner
            _face_in((25, 20, 75, 80), score=0.95),
        ]
    }


@pytest.fixture
def dataset(tmp_path: Path) -> Fixture:
    faces_by_size = _write_group_photos(tmp_path / "photos")
    faces_by_size |= _write_strangers(tmp_path / "strangers")
    return Fixture(tmp_path / "photos", tmp_path / "strangers", FakeDetector(faces_by_size))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def _prepare(dataset: Fixture, out: Path, **changes: object) -> PrepareReport:
    return prepare_dataset(dataset.options(out, **changes), dataset.detector)


def test_only_faces_matched_to_labels_get_rows_and_chips(dataset: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"

    report = _prepare(dataset, out)

    rows = _rows(out / "faces.csv")
    assert sorted(row["labels"] for row in rows) == ["jin", "jin", "v", "v"]
    assert {row["source"] for row in rows} == {"group"}
    for row in rows:
        with Image.open(out / row["chip"]) as chip:
            assert (chip.size, chip.mode) == ((150, 150), "RGB")
        assert len(json.loads(row["landmarks"])) == 5
    group = report.group_photos
    assert (group.labelled_boxes, group.matched, group.missed) == (5, 4, 1)
    assert group.unmatched_detections == 1


def test_copies_of_one_shot_share_group_key_and_split(dataset: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"

    _prepare(dataset, out)

    photos = {Path(row["photo"]).name: row for row in _rows(out / "photos.csv")}
    original, copy, other = photos["a.jpg"], photos["a-small-copy.png"], photos["c.jpg"]
    assert original["group_key"] == copy["group_key"] != other["group_key"]
    assert original["split"] == copy["split"]


def test_photos_csv_has_each_readable_group_photo_with_its_boxes(
    dataset: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    _prepare(dataset, out)

    photos = {Path(row["photo"]).name: row for row in _rows(out / "photos.csv")}
    assert sorted(photos) == ["a-small-copy.png", "a.jpg", "c.jpg"]
    assert (photos["a.jpg"]["width"], photos["a.jpg"]["height"]) == ("200", "160")
    boxes = json.loads(photos["a.jpg"]["boxes"])
    assert boxes[0] == {
        "member": "jin",
        "x_min": 10.0,
        "y_min": 10.0,
        "x_max": 90.0,
        "y_max": 110.0,
    }
    assert Path(photos["a.jpg"]["photo"]).is_absolute()


def test_report_lists_what_could_not_be_used(dataset: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"

    _prepare(dataset, out)

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    group = report["group_photos"]
    assert group["photos_without_labels"] == ["unlabelled.jpg"]
    assert group["labels_without_photos"] == ["orphan.xml"]
    assert len(group["unreadable_photos"]) == 1 and "broken.jpg" in group["unreadable_photos"][0]
    assert group["duplicate_groups"] == 3 and group["duplicate_group_sizes"] == [2]
    assert {"read_labels", "group_duplicates", "group_photos", "total"} <= set(report["timings_s"])


def test_strangers_are_split_by_person_with_every_split_in_every_source(
    dataset: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    _prepare(dataset, out, strangers_folder=dataset.strangers)

    rows = [row for row in _rows(out / "faces.csv") if row["source"] == "stranger"]
    splits_by_person: dict[str, set[str]] = {}
    for row in rows:
        splits_by_person.setdefault(row["group_key"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in splits_by_person.values())
    for source in ("idols", "web"):
        source_splits = [s for key, (s,) in splits_by_person.items() if key.startswith(source)]
        assert sorted(source_splits) == ["test", "train", "train", "valid"]
    assert all(row["labels"] == "" for row in rows)


def test_every_face_of_a_stranger_photo_is_nobody_known(dataset: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"

    _prepare(dataset, out, strangers_folder=dataset.strangers)

    rows = [row for row in _rows(out / "faces.csv") if row["source"] == "stranger"]
    # The fake detector finds a large central face and a small one in the corner.
    assert {(row["x_min"], row["y_min"]) for row in rows} == {("25.00", "20.00"), ("2.00", "2.00")}
    assert all(row["labels"] == "" for row in rows)


def test_stranger_photos_without_a_face_are_counted_not_written(
    dataset: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    report = _prepare(dataset, out, strangers_folder=dataset.strangers)

    assert report.strangers["web"].photos_without_face == 1
    assert report.strangers["web"].photos_used == 12
    assert report.strangers["idols"].photos_used == 12


def test_stranger_photos_per_person_are_capped_the_same_way_each_run(
    dataset: Fixture, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"

    _prepare(dataset, first, strangers_folder=dataset.strangers, max_stranger_photos_per_person=2)
    _prepare(dataset, second, strangers_folder=dataset.strangers, max_stranger_photos_per_person=2)

    rows = [row for row in _rows(first / "faces.csv") if row["source"] == "stranger"]
    photos = {(row["group_key"], row["photo"]) for row in rows}
    per_person: dict[str, int] = {}
    for group_key, _ in photos:
        per_person[group_key] = per_person.get(group_key, 0) + 1
    # web/person-0 has a faceless photo, which the pick may land on.
    assert all(count == 2 for key, count in per_person.items() if key != "web/person-0")
    assert per_person["web/person-0"] in (1, 2)
    assert _rows(first / "faces.csv") == _rows(second / "faces.csv")


def test_no_temporary_files_are_left_behind(dataset: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"

    _prepare(dataset, out, strangers_folder=dataset.strangers)

    assert sorted(path.name for path in out.iterdir()) == [
        "chips",
        "faces.csv",
        "photos.csv",
        "report.json",
    ]
    assert not [path for path in (out / "chips").iterdir() if path.suffix != ".png"]


def test_missing_photos_folder_is_refused(dataset: Fixture, tmp_path: Path) -> None:
    options = replace(dataset.options(tmp_path / "out"), photos_folder=tmp_path / "absent")

    with pytest.raises(DatasetError, match="does not exist"):
        prepare_dataset(options, dataset.detector)


def test_empty_photos_folder_is_refused(dataset: Fixture, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    options = replace(dataset.options(tmp_path / "out"), photos_folder=empty)

    with pytest.raises(DatasetError, match="found none"):
        prepare_dataset(options, dataset.detector)


def test_missing_strangers_folder_is_refused(dataset: Fixture, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="strangers"):
        _prepare(dataset, tmp_path / "out", strangers_folder=tmp_path / "absent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memberlens")
    prepare_cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_prepare_command_runs_with_the_options_given(
    dataset: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[PrepareOptions] = []

    def build(options: PrepareOptions) -> FakeDetector:
        seen.append(options)
        return dataset.detector

    monkeypatch.setattr(prepare, "_build_detector", build)
    out = tmp_path / "out"
    args = _parser().parse_args(
        ["prepare", "--photos", str(dataset.photos), "--out", str(out), "--max-side-px", "0"]
    )

    status = args.handler(args, Settings())

    assert status == 0
    assert (out / "faces.csv").is_file()
    assert seen[0].max_side_px is None and seen[0].min_face_size_px == 20


def test_prepare_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["prepare", "--help"])

    assert exit_info.value.code == 0
    assert "--max-stranger-photos-per-person" in capsys.readouterr().out
