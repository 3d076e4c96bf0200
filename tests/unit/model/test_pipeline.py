import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_tools.align import landmark_template
from data_tools.faces import Face
from model.bundle import Bundle
from model.face_model import FaceModel
from model.gallery import Gallery
from model.pipeline import Pipeline
from model.thresholds import Thresholds, save_thresholds

from .conftest import ROSTER

FACE_SIDE_PX = 150


class FixedDetector:
    """A detector that finds the faces it was given, wherever it is asked to look."""

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces

    def detect(self, photo: np.ndarray) -> list[Face]:
        return list(self.faces)


def _face_at(x_offset: int) -> Face:
    landmarks = landmark_template().astype(np.float32) + np.array([x_offset, 0], np.float32)
    box = (float(x_offset), 0.0, float(x_offset + FACE_SIDE_PX), float(FACE_SIDE_PX))
    return Face(box=box, landmarks=landmarks, detection_score=0.99)


def _photo_bytes() -> bytes:
    """A 450x150 photo: a red face square, a green one, and a grey one."""
    photo = np.full((FACE_SIDE_PX, 3 * FACE_SIDE_PX, 3), 128, dtype=np.uint8)
    photo[:, :150] = (255, 0, 0)
    photo[:, 150:300] = (0, 255, 0)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def pipeline(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> Pipeline:
    save_thresholds(tmp_path, thresholds)
    bundle = Bundle(tmp_path, {"name": "unit"}, ROSTER, face_model, gallery, thresholds)
    detector = FixedDetector([_face_at(0), _face_at(150), _face_at(300)])
    return Pipeline(bundle, detector, max_upload_bytes=1 << 20, max_pixels=1 << 20)


def test_each_face_is_named_with_its_box(pipeline: Pipeline) -> None:
    result = pipeline.identify(_photo_bytes())

    assert result["image"] == {"width": 450, "height": 150}
    assert [face["member"] for face in result["faces"]] == ["jin", "suga", None]
    assert result["faces"][1]["box"] == {"x_min": 150, "y_min": 0, "x_max": 300, "y_max": 150}
    assert {member["name"] for member in result["members"]} == {"jin", "suga"}
    assert all(member["source"] == "face" for member in result["members"])
    assert result["faces"][0]["candidates"][0]["name"] == "jin"
    assert len(result["faces"][0]["landmarks"]) == 5


def test_answer_is_plain_json_types(pipeline: Pipeline) -> None:
    import json

    result = pipeline.identify(_photo_bytes())

    assert json.loads(json.dumps(result)) == result
    assert set(result["timings_ms"]) >= {"decode", "detect", "faces", "total"}
    assert result["image_scores"] == {}


def test_photo_without_faces_returns_empty_lists(pipeline: Pipeline) -> None:
    pipeline.detector = FixedDetector([])

    result = pipeline.identify(_photo_bytes())

    assert result["faces"] == []
    assert result["members"] == []


def test_rewritten_thresholds_apply_to_the_next_request(
    pipeline: Pipeline, thresholds: Thresholds
) -> None:
    before = pipeline.identify(_photo_bytes())
    stricter = thresholds.with_member("jin", face=1.0)
    save_thresholds(pipeline.bundle.path, stricter)
    # Same-second rewrites must be seen too; the stamp includes size and nanoseconds.
    os.utime(pipeline.bundle.path / "thresholds.json", ns=(1, 1))

    after = pipeline.identify(_photo_bytes())

    assert [face["member"] for face in after["faces"]] == [None, "suga", None]
    assert after["model"]["thresholds"] == stricter.digest() != before["model"]["thresholds"]


def test_broken_thresholds_file_keeps_the_previous_thresholds(pipeline: Pipeline) -> None:
    digest = pipeline.model_info["thresholds"]
    (pipeline.bundle.path / "thresholds.json").write_text("{not json")

    result = pipeline.identify(_photo_bytes())

    assert result["model"]["thresholds"] == digest
    assert [face["member"] for face in result["faces"]] == ["jin", "suga", None]
