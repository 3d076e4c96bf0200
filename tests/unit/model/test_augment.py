"""The training-only augmentations of model/data.py on synthetic chips."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from fastai.vision.core import PILImage

from data_tools.errors import InvalidParameterError
from model.data import SimulatePhonePhoto, SimulateSmallFace, SimulateTightCrop
from model.train import TrainConfig, train_bundle

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


def test_phone_photo_draws_its_steps_in_range_and_leaves_valid_chips_alone() -> None:
    chip = _striped_chip()
    np.random.seed(0)

    for _ in range(50):
        phone = SimulatePhonePhoto(p=1.0)
        out = np.asarray(phone(chip, split_idx=0))
        assert out.shape == (CHIP_PX, CHIP_PX, 3)
        assert 15 <= phone.quality <= 60
        assert phone.blur_radius == 0 or 0.5 <= phone.blur_radius <= 2.0
        assert phone.noise_sigma == 0 or 3.0 <= phone.noise_sigma <= 12.0
        assert phone.blur_radius > 0 or phone.noise_sigma > 0
    valid = np.asarray(SimulatePhonePhoto(p=1.0)(chip, split_idx=1))
    np.testing.assert_array_equal(valid, np.asarray(chip))


def test_phone_photo_noise_survives_the_coding() -> None:
    grey = PILImage.create(np.full((CHIP_PX, CHIP_PX, 3), 128, dtype=np.uint8))
    phone = SimulatePhonePhoto(p=1.0)
    phone.before_call(None, 0)
    phone.blur_radius, phone.noise_sigma, phone.quality, phone.noise_seed = 0.0, 12.0, 30, 0

    out = np.asarray(phone.encodes(grey))

    # A flat chip has no spread at all; grain kept through JPEG coding gives it some.
    assert out.std() > 3
    assert abs(out.mean() - 128) < 5


def test_phone_photo_blur_smears_fine_detail() -> None:
    chip = _striped_chip()
    phone = SimulatePhonePhoto(p=1.0)
    phone.before_call(None, 0)
    phone.blur_radius, phone.noise_sigma, phone.quality = 1.5, 0.0, 60

    out = np.asarray(phone.encodes(chip))

    assert out.std() < 40 < np.asarray(chip).std()


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_phone_share_outside_zero_to_one_stops_training_before_any_work(
    tmp_path: Path, share: float
) -> None:
    config = TrainConfig(prepared_dir=tmp_path / "missing", bundle_dir=tmp_path / "b")

    with pytest.raises(InvalidParameterError, match="phone-share"):
        train_bundle(dataclasses.replace(config, phone_share=share))
