"""The training-only augmentations of model/data.py on synthetic chips."""

import numpy as np
from fastai.vision.core import PILImage

from model.data import SimulateSmallFace, SimulateTightCrop

CHIP_PX = 150


def _striped_chip() -> PILImage:
    """A chip of one-pixel stripes: fine detail that any loss of resolution smears."""
    pixels = np.zeros((CHIP_PX, CHIP_PX, 3), dtype=np.uint8)
    pixels[:, ::2] = 255
    return PILImage.create(pixels)


def test_small_face_keeps_the_size_and_loses_the_fine_detail() -> None:
    chip = _striped_chip()
    shrink = SimulateSmallFace(p=1.0)

    out = np.asarray(shrink(chip, split_idx=0))

    assert out.shape == (CHIP_PX, CHIP_PX, 3)
    assert 20 <= shrink.side <= 60
    # Stripes one pixel wide cannot survive a trip through at most 60 px: they blur to grey.
    assert np.asarray(chip).std() > 120
    assert out.std() < 40
    assert abs(out.mean() - np.asarray(chip).mean()) < 10


def test_small_face_leaves_valid_chips_alone() -> None:
    chip = _striped_chip()

    out = SimulateSmallFace(p=1.0)(chip, split_idx=1)

    np.testing.assert_array_equal(np.asarray(out), np.asarray(chip))


def test_tight_crop_repeats_the_kept_rectangle_edges() -> None:
    pixels = np.arange(CHIP_PX * CHIP_PX * 3, dtype=np.uint32).reshape(CHIP_PX, CHIP_PX, 3)
    chip = PILImage.create((pixels % 251).astype(np.uint8))
    crop = SimulateTightCrop(p=1.0)

    out = np.asarray(crop(chip, split_idx=0))

    left, top, right, bottom = crop.kept
    inside = np.asarray(chip)[top:bottom, left:right]
    np.testing.assert_array_equal(out[top:bottom, left:right], inside)
    np.testing.assert_array_equal(out[0, left:right], inside[0])
    np.testing.assert_array_equal(out[top:bottom, 0], inside[:, 0])
