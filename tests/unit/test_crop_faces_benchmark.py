"""The crop benchmark's finders and counts, with fake detectors: no photo, no model."""

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from data_tools.faces import Face
from data_tools.matching import Box

from .benchmark_scripts import load_benchmark

crop_faces = load_benchmark("crop_faces.py")

LEFT_HEAD = (10.0, 10.0, 50.0, 50.0)
RIGHT_HEAD = (110.0, 10.0, 150.0, 50.0)


class _BoxesDetector:
    """Finds the given boxes, scaled by the photo's width against `width_px`."""

    def __init__(self, boxes: list[tuple[float, float, float, float]], width_px: int) -> None:
        self.boxes = boxes
        self.width_px = width_px
        self.seen_shapes: list[tuple[int, ...]] = []

    def detect(self, photo: NDArray[np.uint8]) -> list[Face]:
        self.seen_shapes.append(photo.shape)
        scale = photo.shape[1] / self.width_px
        return [
            Face(
                (x0 * scale, y0 * scale, x1 * scale, y1 * scale), np.zeros((5, 2), np.float32), 0.9
            )
            for x0, y0, x1, y1 in self.boxes
        ]


def _photo() -> NDArray[np.uint8]:
    return np.zeros((60, 160, 3), dtype=np.uint8)


def test_enlarged_boxes_come_back_in_photo_pixels() -> None:
    detector = _BoxesDetector([LEFT_HEAD], width_px=160)

    boxes = crop_faces._enlarged_boxes(detector, _photo(), 2)

    assert detector.seen_shapes == [(120, 320, 3)]
    assert np.allclose(boxes, [LEFT_HEAD])


def test_a_face_any_finder_finds_counts_once_for_any() -> None:
    finders = {
        "left only": lambda photo: [LEFT_HEAD],
        "right twice": lambda photo: [RIGHT_HEAD, (70.0, 10.0, 100.0, 50.0)],
    }
    costs = {name: crop_faces.FinderCost() for name in finders}
    tally = crop_faces.Tally(crops=1, faces=2)

    crop_faces.count_finders(_photo(), [LEFT_HEAD, RIGHT_HEAD], set(), finders, costs, tally)

    assert tally.found_by == {"left only": 1, "right twice": 1, crop_faces.ANY_FINDER: 2}
    assert tally.crops_all_found_by == {"left only": 0, "right twice": 0, crop_faces.ANY_FINDER: 1}
    assert costs["left only"].unmatched == 0
    assert costs["right twice"].unmatched == 1
    assert costs["left only"].crops == 1


def test_a_face_several_finders_find_counts_once_for_any() -> None:
    finders = {"left": lambda photo: [LEFT_HEAD], "left again": lambda photo: [LEFT_HEAD]}
    costs = {name: crop_faces.FinderCost() for name in finders}
    tally = crop_faces.Tally(crops=1, faces=2)

    crop_faces.count_finders(_photo(), [LEFT_HEAD, RIGHT_HEAD], {0}, finders, costs, tally)

    assert tally.found_by == {"left": 1, "left again": 1, crop_faces.ANY_FINDER: 1}
    assert tally.crops_all_found_by[crop_faces.ANY_FINDER] == 0


def test_faces_the_pipeline_found_count_for_any() -> None:
    finders: dict[str, Callable[[NDArray[np.uint8]], list[Box]]] = {"nothing": lambda photo: []}
    costs = {"nothing": crop_faces.FinderCost()}
    tally = crop_faces.Tally(crops=1, faces=2)

    crop_faces.count_finders(_photo(), [LEFT_HEAD, RIGHT_HEAD], {0}, finders, costs, tally)

    assert tally.found_by == {"nothing": 0, crop_faces.ANY_FINDER: 1}
    assert tally.crops_all_found_by == {"nothing": 0, crop_faces.ANY_FINDER: 0}


def test_stretched_photo_spreads_a_dim_range() -> None:
    photo = np.full((10, 10, 3), 100, dtype=np.uint8)
    photo[:5] = 120

    stretched = crop_faces._stretched(photo)

    assert stretched.min() == 0 and stretched.max() == 255
