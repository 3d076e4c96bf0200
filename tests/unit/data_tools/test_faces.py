"""Tests of `MtcnnDetector`'s own logic (downscaling, mapping back, order), with a fake MTCNN."""

from dataclasses import dataclass, field

import numpy as np
import pytest
from numpy.typing import NDArray

from data_tools import faces
from data_tools.errors import InvalidParameterError
from data_tools.faces import MtcnnDetector

Detections = tuple[NDArray[np.float64] | None, NDArray[np.float64] | None, NDArray | None]


@dataclass
class FakeMtcnn:
    """Answers `detect` with fixed results and remembers the images it saw."""

    boxes: list[list[float]]
    scores: list[float]
    points: list[list[list[float]]]
    seen_shapes: list[tuple[int, ...]] = field(default_factory=list)

    def detect(self, image: NDArray[np.uint8], landmarks: bool) -> Detections:
        self.seen_shapes.append(image.shape)
        if not self.boxes:
            return None, None, None
        return np.array(self.boxes), np.array(self.scores), np.array(self.points)


def _detector_with(
    monkeypatch: pytest.MonkeyPatch, fake: FakeMtcnn, **options: int | None
) -> MtcnnDetector:
    monkeypatch.setattr(faces, "_load_mtcnn", lambda *args: fake)
    return MtcnnDetector(**options)  # type: ignore[arg-type]


def _points(x: float, y: float) -> list[list[float]]:
    return [[x, y], [x + 10, y], [x + 5, y + 6], [x + 1, y + 12], [x + 9, y + 12]]


def test_faces_come_back_highest_detection_score_first(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMtcnn(
        boxes=[[0, 0, 20, 20], [30, 0, 50, 20]], scores=[0.8, 0.99], points=[_points(5, 5)] * 2
    )
    detector = _detector_with(monkeypatch, fake, max_side_px=None)

    found = detector.detect(np.zeros((100, 100, 3), dtype=np.uint8))

    assert [face.detection_score for face in found] == [0.99, 0.8]


def test_large_photo_is_detected_downscaled_and_mapped_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeMtcnn(boxes=[[99.5, 49.5, 149.5, 99.5]], scores=[0.9], points=[_points(109.5, 59.5)])
    detector = _detector_with(monkeypatch, fake, max_side_px=500)

    (face,) = detector.detect(np.zeros((600, 1000, 3), dtype=np.uint8))

    assert fake.seen_shapes == [(300, 500, 3)]
    np.testing.assert_allclose(face.box, (199.5, 99.5, 299.5, 199.5))
    np.testing.assert_allclose(face.landmarks[0], (219.5, 119.5))
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32


def test_small_photo_is_detected_at_full_size(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMtcnn(boxes=[[10, 10, 40, 40]], scores=[0.9], points=[_points(15, 15)])
    detector = _detector_with(monkeypatch, fake, max_side_px=500)

    (face,) = detector.detect(np.zeros((200, 300, 3), dtype=np.uint8))

    assert fake.seen_shapes == [(200, 300, 3)]
    assert face.box == (10.0, 10.0, 40.0, 40.0)


def test_boxes_reaching_past_the_photo_are_clipped(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMtcnn(boxes=[[-8, -4, 130, 70]], scores=[0.9], points=[_points(20, 20)])
    detector = _detector_with(monkeypatch, fake, max_side_px=None)

    (face,) = detector.detect(np.zeros((60, 120, 3), dtype=np.uint8))

    assert face.box == (0.0, 0.0, 120.0, 60.0)


def test_photo_without_faces_gives_an_empty_list(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = _detector_with(monkeypatch, FakeMtcnn(boxes=[], scores=[], points=[]))

    assert detector.detect(np.zeros((100, 100, 3), dtype=np.uint8)) == []


def test_photo_smaller_than_the_minimum_face_is_not_sent_to_mtcnn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeMtcnn(boxes=[[0, 0, 5, 5]], scores=[0.9], points=[_points(1, 1)])
    detector = _detector_with(monkeypatch, fake, min_face_size_px=20)

    found = detector.detect(np.zeros((15, 300, 3), dtype=np.uint8))

    assert found == []
    assert fake.seen_shapes == []


@pytest.mark.parametrize(
    "options",
    [
        {"min_face_size_px": 8},
        {"max_side_px": 20},
        {"thresholds": (0.6, 0.7)},
        {"scale_factor": 1.2},
    ],
)
def test_options_outside_their_range_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        MtcnnDetector(**options)  # type: ignore[arg-type]
