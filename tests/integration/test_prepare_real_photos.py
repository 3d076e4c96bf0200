"""Run prepare with the real MTCNN on a few real group photos and strangers, read in place."""

import csv
from pathlib import Path

import pytest
from PIL import Image

from data_tools.prepare import PrepareOptions, PrepareReport, prepare_dataset

GROUP_PHOTO_COUNT = 10
STRANGER_PHOTOS_PER_PERSON = 2
# MTCNN matched 97% of the labelled faces of all 196 photos; a handful of photos vary more.
MIN_MATCH_RATE = 0.85
MEMBERS = {"jhope", "jimin", "jin", "jungkook", "rm", "suga", "v"}


@pytest.fixture(scope="module")
def prepared(
    datasets: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PrepareReport]:
    out = tmp_path_factory.mktemp("prepared")
    options = PrepareOptions(
        photos_folder=datasets / "bts-group-photos",
        out_folder=out,
        strangers_folder=datasets / "strangers",
        limit_photos=GROUP_PHOTO_COUNT,
        max_stranger_photos_per_person=STRANGER_PHOTOS_PER_PERSON,
    )
    return out, prepare_dataset(options)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_prepare_on_real_photos_matches_chips_and_keeps_groups_on_one_side(
    prepared: tuple[Path, PrepareReport],
) -> None:
    out, report = prepared

    faces = _rows(out / "faces.csv")
    photos = _rows(out / "photos.csv")

    group = report.group_photos
    assert group.processed_photos == GROUP_PHOTO_COUNT
    assert group.matched / group.labelled_boxes >= MIN_MATCH_RATE
    assert {row["labels"] for row in faces if row["source"] == "group"} <= MEMBERS
    assert {row["labels"] for row in faces if row["source"] == "stranger"} == {""}
    for row in faces:
        with Image.open(out / row["chip"]) as chip:
            assert chip.size == (150, 150) and chip.mode == "RGB"
    splits_by_group: dict[str, set[str]] = {}
    for row in faces + photos:
        splits_by_group.setdefault(row["group_key"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in splits_by_group.values())
    stranger_splits = {row["split"] for row in faces if row["source"] == "stranger"}
    assert stranger_splits == {"train", "valid", "test"}
