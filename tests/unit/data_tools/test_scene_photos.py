"""Tests of the scene photo maker on tiny synthetic photos: crops, collages, degradations."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_tools.crops import LabelledBox, choose_crop, cuts_a_head, heads_inside
from data_tools.scene_photos import (
    SCENE_FILE,
    ScenePhoto,
    ScenePhotoOptions,
    degrade,
    make_collage,
    make_scene_photos,
)

PHOTO_SIZE = (800, 400)
MEMBERS = ["jhope", "jimin", "jin", "rm", "suga", "v"]


def _row_of_heads() -> list[LabelledBox]:
    """Six 60 px heads in a row with 60 px between them, and one head below the second."""
    heads = [
        LabelledBox(member, (30.0 + 120 * index, 50.0, 90.0 + 120 * index, 110.0))
        for index, member in enumerate(MEMBERS[:5])
    ]
    return [*heads, LabelledBox("v", (160.0, 200.0, 220.0, 260.0))]


@pytest.mark.parametrize("n_members", [1, 2, 3, 4])
def test_crops_hold_whole_heads_and_cut_none(n_members: int) -> None:
    boxes = _row_of_heads()
    rng = np.random.default_rng(7)

    crops = [choose_crop(boxes, PHOTO_SIZE, n_members, rng) for _ in range(200)]

    found = [crop for crop in crops if crop is not None]
    assert len(found) >= 150
    for crop in found:
        assert not cuts_a_head(boxes, crop, PHOTO_SIZE)
        assert 0 <= crop[0] < crop[2] <= PHOTO_SIZE[0]
        assert 0 <= crop[1] < crop[3] <= PHOTO_SIZE[1]
        assert len(heads_inside(boxes, crop)) >= 1


def test_crops_of_every_size_from_one_to_four_are_made() -> None:
    boxes = _row_of_heads()
    rng = np.random.default_rng(0)

    sizes = {
        len(heads_inside(boxes, crop))
        for n_members in (1, 2, 3, 4)
        for crop in (choose_crop(boxes, PHOTO_SIZE, n_members, rng) for _ in range(50))
        if crop is not None
    }

    assert {1, 2, 3, 4} <= sizes


def test_heads_inside_are_moved_into_crop_pixels() -> None:
    boxes = [LabelledBox("jin", (100.0, 50.0, 160.0, 110.0)), LabelledBox("v", (0, 0, 20, 20))]

    inside = heads_inside(boxes, (80.0, 40.0, 200.0, 200.0))

    assert inside == [LabelledBox("jin", (20.0, 10.0, 80.0, 70.0))]


def test_a_crop_through_a_head_counts_as_cutting_it() -> None:
    boxes = [LabelledBox("jin", (100.0, 50.0, 160.0, 110.0))]

    assert cuts_a_head(boxes, (120.0, 0.0, 300.0, 300.0), PHOTO_SIZE)
    assert not cuts_a_head(boxes, (160.0, 0.0, 300.0, 300.0), PHOTO_SIZE)
    assert not cuts_a_head(boxes, (90.0, 40.0, 300.0, 300.0), PHOTO_SIZE)


def test_crops_are_the_same_for_the_same_seed() -> None:
    boxes = _row_of_heads()

    first = [choose_crop(boxes, PHOTO_SIZE, 2, np.random.default_rng(3)) for _ in range(5)]
    second = [choose_crop(boxes, PHOTO_SIZE, 2, np.random.default_rng(3)) for _ in range(5)]

    assert first == second


def _photo(boxes: list[LabelledBox]) -> ScenePhoto:
    pixels = np.random.default_rng(0).integers(0, 256, (400, 800, 3), dtype=np.uint8)
    return ScenePhoto(pixels, boxes, "crop", "test.jpg")


def test_degrading_keeps_boxes_on_the_same_content_and_records_its_steps() -> None:
    photo = _photo([LabelledBox("jin", (400.0, 200.0, 480.0, 280.0))])

    degraded = [degrade(photo, np.random.default_rng(seed)) for seed in range(20)]

    for result in degraded:
        height, width = result.pixels.shape[:2]
        scale_x, scale_y = width / 800, height / 400
        assert result.boxes[0].box == pytest.approx(
            (400 * scale_x, 200 * scale_y, 480 * scale_x, 280 * scale_y)
        )
        assert result.degraded[-1] == "jpeg"
        assert result.members == ["jin"]
    assert any("small" in result.degraded for result in degraded)
    assert any("light" in result.degraded for result in degraded)
    assert any("blur" in result.degraded for result in degraded)
    assert any("noise" in result.degraded for result in degraded)
    assert any(result.pixels.shape[1] < 800 for result in degraded)


def test_degrading_is_the_same_for_the_same_seed() -> None:
    photo = _photo([])

    first = degrade(photo, np.random.default_rng(5))
    second = degrade(photo, np.random.default_rng(5))

    assert first.degraded == second.degraded
    assert np.array_equal(first.pixels, second.pixels)


def test_collage_label_is_the_union_and_boxes_follow_their_crops() -> None:
    left = ScenePhoto(
        np.zeros((100, 200, 3), np.uint8), [LabelledBox("jin", (0, 0, 50, 50))], "crop", "a"
    )
    right = ScenePhoto(
        np.zeros((320, 320, 3), np.uint8), [LabelledBox("v", (10, 10, 60, 60))], "crop", "b"
    )

    collage = make_collage([left, right], np.random.default_rng(0))

    assert collage.members == ["jin", "v"]
    assert collage.pixels.shape == (320, 640, 3)
    # The left part is scaled by 1.6 and centred vertically in its 320 px cell.
    assert collage.boxes[0].box == pytest.approx((0.0, 80.0, 80.0, 160.0))
    assert collage.boxes[1].box == pytest.approx((330.0, 10.0, 380.0, 60.0))


def _prepared_folder(root: Path) -> Path:
    prepared = root / "prepared"
    prepared.mkdir()
    photo_rows = []
    for index, split in enumerate(["train", "train", "valid"]):
        path = root / f"group-{index}.png"
        Image.fromarray(np.full((400, 800, 3), 40 * index, np.uint8)).save(path)
        boxes = [
            {
                "member": b.member,
                "x_min": b.box[0],
                "y_min": b.box[1],
                "x_max": b.box[2],
                "y_max": b.box[3],
            }
            for b in _row_of_heads()
        ]
        photo_rows.append(
            {
                "photo": str(path),
                "split": split,
                "group_key": f"g{index}",
                "width": 800,
                "height": 400,
                "boxes": json.dumps(boxes),
            }
        )
    pd.DataFrame(photo_rows).to_csv(prepared / "photos.csv", index=False)
    face_rows = []
    for index, split in enumerate(["train", "valid", "test"]):
        path = root / f"stranger-{index}.png"
        Image.fromarray(np.full((160, 160, 3), 200, np.uint8)).save(path)
        face_rows.append({"photo": str(path), "source": "stranger", "split": split, "labels": ""})
    pd.DataFrame(face_rows).to_csv(prepared / "faces.csv", index=False)
    return prepared


def test_scene_photos_are_written_with_labels_and_are_the_same_for_the_same_seed(
    tmp_path: Path,
) -> None:
    prepared = _prepared_folder(tmp_path)
    options = ScenePhotoOptions(
        seed=1,
        crops_per_photo={"train": 4, "valid": 4},
        collages={"train": 3, "valid": 1},
        max_strangers={"train": 5, "valid": 5},
    )

    first = make_scene_photos(prepared, tmp_path / "one", options)
    second = make_scene_photos(prepared, tmp_path / "two", options)

    assert first.equals(second)
    assert (tmp_path / "one" / SCENE_FILE).read_text() == (
        tmp_path / "two" / SCENE_FILE
    ).read_text()
    kinds = first.groupby(["split", "kind"]).size().to_dict()
    assert kinds[("train", "whole")] == 4  # two photos, each clean and degraded
    assert kinds[("valid", "crop")] == 4
    strangers = first[first["kind"] == "stranger"]
    assert list(strangers["split"]) == ["train", "valid"]  # the test stranger is never used
    assert (strangers["labels"] == "").all()
    for _, row in first.iterrows():
        with Image.open(tmp_path / "one" / row["image"]) as image:
            width, height = image.size
        for box in json.loads(row["boxes"]):
            assert 0 <= box["x_min"] < box["x_max"] <= width + 0.5
            assert 0 <= box["y_min"] < box["y_max"] <= height + 0.5
        assert row["labels"] == " ".join(
            sorted({box["member"] for box in json.loads(row["boxes"])})
        )
