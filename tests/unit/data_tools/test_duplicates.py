"""Tests of duplicate grouping (exact and perceptual) and of the seeded split by group."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_tools.duplicates import group_duplicates, split_groups
from data_tools.errors import InvalidParameterError


def _scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A blocky random picture: distinct seeds give perceptually distinct photos."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)


def _save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def test_byte_identical_copies_share_a_group(tmp_path: Path) -> None:
    original = _save(_scene(1), tmp_path / "a.jpg", quality=90)
    copy = tmp_path / "b.jpg"
    copy.write_bytes(original.read_bytes())

    keys = group_duplicates([original, copy])

    assert keys[original] == keys[copy]


def test_resized_reencoded_copy_joins_the_group_of_its_original(tmp_path: Path) -> None:
    original = _save(_scene(1), tmp_path / "original.jpg", quality=95)
    copy = _save(_scene(1).resize((200, 150)), tmp_path / "copy.png")
    recompressed = _save(_scene(1).resize((480, 360)), tmp_path / "big.jpg", quality=40)

    keys = group_duplicates([original, copy, recompressed])

    assert keys[original] == keys[copy] == keys[recompressed]


def test_distinct_photos_stay_in_separate_groups(tmp_path: Path) -> None:
    paths = [_save(_scene(seed), tmp_path / f"{seed}.jpg") for seed in range(6)]

    keys = group_duplicates(paths)

    assert len(set(keys.values())) == 6


def test_group_key_does_not_depend_on_order_or_location(tmp_path: Path) -> None:
    first = _save(_scene(3), tmp_path / "first.jpg")
    second = _save(_scene(3).resize((160, 120)), tmp_path / "second.jpg")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    moved_first = moved / "renamed.jpg"
    moved_first.write_bytes(first.read_bytes())

    keys = group_duplicates([first, second])
    keys_reversed = group_duplicates([second, moved_first])

    assert keys[first] == keys_reversed[moved_first] == keys_reversed[second]


def test_undecodable_photo_gets_a_group_of_its_own(tmp_path: Path) -> None:
    photo = _save(_scene(1), tmp_path / "photo.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    keys = group_duplicates([photo, broken])

    assert keys[photo] != keys[broken]


def test_split_is_the_same_for_the_same_seed() -> None:
    keys = [f"group-{index}" for index in range(50)]

    first = split_groups(keys, valid_share=0.2, seed=7)
    second = split_groups(list(reversed(keys)), valid_share=0.2, seed=7)

    assert first == second


def test_split_changes_with_the_seed() -> None:
    keys = [f"group-{index}" for index in range(50)]

    assert split_groups(keys, seed=1) != split_groups(keys, seed=2)


def test_split_sends_about_the_valid_share_of_groups_to_valid() -> None:
    keys = [f"group-{index}" for index in range(100)]

    splits = split_groups(keys, valid_share=0.2, seed=0)

    assert sum(split == "valid" for split in splits.values()) == 20


def test_photos_of_one_group_never_land_on_both_sides(tmp_path: Path) -> None:
    paths = [_save(_scene(seed), tmp_path / f"{seed}.jpg") for seed in range(8)]
    paths += [
        _save(_scene(seed).resize((200, 150)), tmp_path / f"{seed}-copy.png") for seed in range(8)
    ]
    keys = group_duplicates(paths)

    splits = split_groups(keys.values(), valid_share=0.5, seed=0)

    for seed in range(8):
        original, copy = tmp_path / f"{seed}.jpg", tmp_path / f"{seed}-copy.png"
        assert splits[keys[original]] == splits[keys[copy]]
    assert set(splits.values()) == {"train", "valid"}


def test_two_groups_put_one_on_each_side() -> None:
    splits = split_groups(["a", "b"], valid_share=0.1, seed=0)

    assert sorted(splits.values()) == ["train", "valid"]


@pytest.mark.parametrize("share", [-0.1, 1.0, 1.5])
def test_valid_share_outside_its_range_is_refused(share: float) -> None:
    with pytest.raises(InvalidParameterError, match="valid_share"):
        split_groups(["a", "b"], valid_share=share)
