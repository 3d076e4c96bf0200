"""Test the per-request options of the pipeline: minimum face size, top_k and landmarks."""

from pathlib import Path

import numpy as np
import pytest

from data_tools.errors import InvalidParameterError
from data_tools.faces import Face
from model.bundle import Bundle
from model.face_model import FaceModel
from model.gallery import Gallery
from model.pipeline import Pipeline
from model.thresholds import Thresholds, save_thresholds

from .conftest import ROSTER
from .test_pipeline import FixedDetector, _face_at, _photo_bytes


@pytest.fixture
def pipeline(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> Pipeline:
    save_thresholds(tmp_path, thresholds)
    bundle = Bundle(tmp_path, {"name": "unit"}, ROSTER, face_model, gallery, thresholds)
    detector = FixedDetector([_face_at(0), _face_at(150), _face_at(300)])
    return Pipeline(bundle, detector, max_upload_bytes=1 << 20, max_pixels=1 << 20)


def test_min_face_size_leaves_out_smaller_faces(pipeline: Pipeline) -> None:
    small = Face(
        box=(300.0, 0.0, 340.0, 40.0), landmarks=_face_at(300).landmarks, detection_score=0.9
    )
    pipeline.detector = FixedDetector([_face_at(0), small])

    kept_all = pipeline.identify(_photo_bytes(), min_face_size_px=0)
    kept_large = pipeline.identify(_photo_bytes(), min_face_size_px=41)

    assert len(kept_all["faces"]) == 2
    assert [face["box"]["x_min"] for face in kept_large["faces"]] == [0]


def test_top_k_limits_the_candidates_per_face(pipeline: Pipeline) -> None:
    one = pipeline.identify(_photo_bytes(), top_k=1)
    none = pipeline.identify(_photo_bytes(), top_k=0)

    assert [len(face["candidates"]) for face in one["faces"]] == [1, 1, 1]
    assert [face["candidates"] for face in none["faces"]] == [[], [], []]
    assert [face["member"] for face in none["faces"]] == ["jin", "suga", None]


def test_landmarks_are_left_out_when_not_asked_for(pipeline: Pipeline) -> None:
    result = pipeline.identify(_photo_bytes(), return_landmarks=False)

    assert all("landmarks" not in face for face in result["faces"])
    assert [face["member"] for face in result["faces"]] == ["jin", "suga", None]


def test_default_options_keep_three_candidates_and_landmarks(pipeline: Pipeline) -> None:
    result = pipeline.identify(_photo_bytes())

    face = result["faces"][0]
    assert len(face["candidates"]) == min(3, len(ROSTER))
    assert np.asarray(face["landmarks"]).shape == (5, 2)


@pytest.mark.parametrize(("min_face_size_px", "top_k"), [(-1, 3), (0, -1)])
def test_negative_options_are_invalid_parameters(
    pipeline: Pipeline, min_face_size_px: int, top_k: int
) -> None:
    with pytest.raises(InvalidParameterError):
        pipeline.identify(_photo_bytes(), min_face_size_px=min_face_size_px, top_k=top_k)
