"""Tests of the similarity fit and of chip alignment from five landmarks."""

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from data_tools.align import (
    LANDMARK_TEMPLATE_150,
    align_face,
    align_faces,
    chip_outside_share,
    estimate_similarity,
    landmark_residual_px,
    landmarks_to_chip,
)
from data_tools.errors import InvalidParameterError
from data_tools.faces import Face

TEMPLATE = LANDMARK_TEMPLATE_150.astype(np.float32)


def _similarity(scale: float, angle_deg: float, shift: tuple[float, float]) -> NDArray[np.float64]:
    angle = math.radians(angle_deg)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.hstack([scale * rotation, np.array(shift)[:, None]])


def _apply(affine: NDArray[np.float64], points: NDArray[np.floating]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = np.asarray(points, np.float64) @ affine[:, :2].T + affine[:, 2]
    return result


def _photo_with_dots(points: NDArray[np.float64], size: tuple[int, int]) -> NDArray[np.uint8]:
    """A black photo with a soft white dot (sigma 2.5 px) centred on each point."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width]
    brightness = np.zeros((height, width))
    for x, y in points:
        brightness += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 2.5**2))
    grey = np.clip(brightness * 255, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _dot_centre(
    chip: NDArray[np.uint8], near: NDArray[np.float64], radius: int = 9
) -> NDArray[np.float64]:
    """Brightness-weighted centroid of the chip around `near`."""
    x0, y0 = (round(float(value)) for value in near)
    window = chip[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1, 0].astype(float)
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    return np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()


def test_similarity_fit_recovers_a_known_transform() -> None:
    known = _similarity(1.7, 23.0, (12.0, -5.0))
    source = np.random.default_rng(0).uniform(0, 100, (5, 2))

    fitted = estimate_similarity(source, _apply(known, source))

    np.testing.assert_allclose(fitted, known, atol=1e-9)


def test_template_landmarks_map_to_themselves() -> None:
    to_chip = landmarks_to_chip(TEMPLATE)

    residual = landmark_residual_px(TEMPLATE)

    np.testing.assert_allclose(to_chip, np.hstack([np.eye(2), np.zeros((2, 1))]), atol=1e-4)
    assert residual < 1e-3


@pytest.mark.parametrize(
    ("scale", "angle_deg", "shift", "photo_size"),
    [
        (2.3, -35.0, (180.0, 140.0), (520, 560)),  # large and turned: box-filtered first
        (4.5, 5.0, (50.0, 60.0), (800, 800)),
        (0.8, 12.0, (40.0, 30.0), (200, 220)),  # smaller than the chip: enlarged
    ],
)
def test_rotated_and_scaled_face_aligns_back_to_the_template(
    scale: float, angle_deg: float, shift: tuple[float, float], photo_size: tuple[int, int]
) -> None:
    landmarks = _apply(_similarity(scale, angle_deg, shift), LANDMARK_TEMPLATE_150)
    photo = _photo_with_dots(landmarks, photo_size)

    chip = align_face(photo, landmarks.astype(np.float32))

    assert landmark_residual_px(landmarks) < 1.0
    for target in LANDMARK_TEMPLATE_150:
        # A quarter pixel: a half-pixel slip in the sampling convention would show.
        assert np.linalg.norm(_dot_centre(chip, target) - target) < 0.25


def test_photo_that_is_already_a_chip_comes_back_unchanged() -> None:
    photo = np.random.default_rng(1).integers(0, 256, (150, 150, 3), dtype=np.uint8)

    chip = align_face(photo, TEMPLATE)

    assert np.abs(chip.astype(int) - photo.astype(int)).max() <= 1


def test_mirrored_landmarks_are_fitted_without_reflection() -> None:
    mirrored = TEMPLATE.copy()
    mirrored[:, 0] = 150 - mirrored[:, 0]

    to_chip = landmarks_to_chip(mirrored)

    assert np.linalg.det(to_chip[:, :2]) > 0


def test_align_faces_returns_one_chip_per_face_in_order() -> None:
    photo = np.zeros((300, 400, 3), dtype=np.uint8)
    photo[:, 200:] = 200
    left = Face((0, 0, 150, 150), TEMPLATE, 0.9)
    right = Face((200, 0, 350, 150), TEMPLATE + np.float32([200, 0]), 0.8)

    chips = align_faces(photo, [left, right])

    assert chips.shape == (2, 150, 150, 3)
    assert chips.dtype == np.uint8
    assert chips[0].mean() < 1 and chips[1].mean() > 199


def test_align_faces_without_faces_returns_an_empty_batch() -> None:
    chips = align_faces(np.zeros((10, 10, 3), dtype=np.uint8), [])

    assert chips.shape == (0, 150, 150, 3)


def test_coincident_landmarks_are_refused() -> None:
    landmarks = np.full((5, 2), 7.0, dtype=np.float32)

    with pytest.raises(InvalidParameterError, match="coincide"):
        landmark_residual_px(landmarks)


def test_non_rgb_photo_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="uint8"):
        align_face(np.zeros((150, 150), dtype=np.uint8), TEMPLATE)


def test_chip_of_a_face_inside_a_large_photo_lies_inside_it() -> None:
    landmarks = TEMPLATE + np.float32([100, 100])

    share = chip_outside_share(400, 400, landmarks)

    assert share == 0.0


def test_chip_of_a_tight_face_crop_lies_mostly_outside_it() -> None:
    # A 70 px crop from eyebrows to chin, as face-crop datasets ship them.
    landmarks = (TEMPLATE - np.float32([40, 35])) * np.float32(1.0)

    share = chip_outside_share(70, 80, landmarks)

    assert 0.5 < share < 0.9


def test_chip_reaching_past_the_photo_edge_repeats_the_edge_not_black() -> None:
    # A tight crop: the face fills a 70x80 photo, so its chip reaches well past every edge.
    photo = np.full((80, 70, 3), 200, dtype=np.uint8)
    landmarks = (TEMPLATE - np.float32([40, 35])).astype(np.float32)
    face = Face(box=(0.0, 0.0, 70.0, 80.0), landmarks=landmarks, detection_score=0.99)

    chip = align_faces(photo, [face])[0]

    assert chip_outside_share(70, 80, landmarks) > 0.3
    assert chip.min() >= 190, "no black frame may be left where the chip leaves the photo"
