"""A bundle with a scene model: its round trip, and the pipeline's fused answer."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from data_tools.errors import BundleLoadError
from data_tools.faces import Face
from model import bundle as bundle_module
from model.assign import NOBODY
from model.bundle import SCENE_WEIGHTS_FILE, Bundle, load_bundle, save_bundle
from model.face_model import FaceModel
from model.gallery import Gallery
from model.pipeline import Pipeline
from model.scene import SceneModel
from model.scene_tuning import SceneAnswers, face_arrays, fused_answers, lifted_answers
from model.thresholds import LiftCuts, Thresholds, save_thresholds

from .conftest import ROSTER, ColourBody
from .test_pipeline import FixedDetector, _face_at

SCENE_MANIFEST = {"architecture": "tf_efficientnet_lite0", "input_size_px": 32}


def _scene_model() -> SceneModel:
    """A scene model sure that `suga` is in every photo and `jin` in none."""
    model = SceneModel(ColourBody(), 3, len(ROSTER))
    linear = model.head[-1]
    assert isinstance(linear, torch.nn.Linear)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([-5.0, 5.0]))
    return model.eval()


@pytest.fixture(autouse=True)
def tiny_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_module, "build_face_body", lambda pretrained: ColourBody())
    monkeypatch.setattr(
        bundle_module,
        "build_scene_model",
        lambda architecture, n_members, pretrained: SceneModel(ColourBody(), 3, n_members),
    )


def _save(
    path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds, *, scene: bool
) -> None:
    manifest: dict[str, object] = {
        "name": "b",
        "roster": ROSTER,
        "face_model": {"descriptor_size": 3},
    }
    if scene:
        manifest["scene_model"] = SCENE_MANIFEST
    save_bundle(
        path,
        manifest=manifest,
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
        scene_model=_scene_model() if scene else None,
    )


def test_bundle_round_trip_keeps_the_scene_model(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    _save(tmp_path / "b", face_model, gallery, thresholds, scene=True)

    loaded = load_bundle(tmp_path / "b")

    assert (tmp_path / "b" / SCENE_WEIGHTS_FILE).is_file()
    assert loaded.scene_model is not None
    assert loaded.scene_size_px == 32
    photos = torch.rand(2, 3, 32, 32)
    assert torch.allclose(loaded.scene_model(photos), _scene_model()(photos))


def test_bundle_without_a_scene_model_loads_with_none(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    _save(tmp_path / "b", face_model, gallery, thresholds, scene=False)

    loaded = load_bundle(tmp_path / "b")

    assert loaded.scene_model is None
    assert not (tmp_path / "b" / SCENE_WEIGHTS_FILE).exists()


def test_manifest_naming_a_missing_scene_model_is_a_load_error(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    _save(tmp_path / "b", face_model, gallery, thresholds, scene=True)
    (tmp_path / "b" / SCENE_WEIGHTS_FILE).unlink()

    with pytest.raises(BundleLoadError, match=r"scene_model\.safetensors"):
        load_bundle(tmp_path / "b")


def _photo_bytes() -> bytes:
    photo = np.full((150, 300, 3), 128, dtype=np.uint8)
    photo[:, :150] = (255, 0, 0)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    return buffer.getvalue()


def _pipeline(
    tmp_path: Path,
    face_model: FaceModel,
    gallery: Gallery,
    thresholds: Thresholds,
    faces: list[Face] | None = None,
) -> Pipeline:
    save_thresholds(tmp_path, thresholds)
    bundle = Bundle(
        tmp_path,
        {"name": "unit", "scene_model": SCENE_MANIFEST},
        ROSTER,
        face_model,
        gallery,
        thresholds,
        _scene_model(),
    )
    # By default the red face (jin) and the grey one (nobody known) are found.
    found = [_face_at(0), _face_at(150)] if faces is None else faces
    return Pipeline(bundle, FixedDetector(found), max_upload_bytes=1 << 20, max_pixels=1 << 20)


def test_member_the_scene_model_is_sure_of_is_added_without_a_box(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    with_image_cuts = Thresholds(thresholds.face, thresholds.gallery, {"jin": 0.5, "suga": 0.5})
    pipeline = _pipeline(tmp_path, face_model, gallery, with_image_cuts)

    result = pipeline.identify(_photo_bytes())

    assert result["members"][0]["name"] == "jin"
    assert result["members"][0]["source"] == "face"
    assert result["members"][0]["box"] == {"x_min": 0, "y_min": 0, "x_max": 150, "y_max": 150}
    assert result["members"][1] == {"name": "suga", "score": 0.9933, "source": "image", "box": None}
    assert result["image_scores"] == {"jin": 0.0067, "suga": 0.9933}
    assert "image" in result["timings_ms"]


def test_scene_scores_without_image_cuts_add_nobody(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    pipeline = _pipeline(tmp_path, face_model, gallery, thresholds)

    result = pipeline.identify(_photo_bytes())

    assert [member["name"] for member in result["members"]] == ["jin"]
    assert result["image_scores"]["suga"] == pytest.approx(0.9933)


def test_image_cuts_rewritten_on_disk_apply_to_the_next_request(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    pipeline = _pipeline(tmp_path, face_model, gallery, thresholds)
    before = pipeline.identify(_photo_bytes())

    save_thresholds(
        tmp_path, Thresholds(thresholds.face, thresholds.gallery, {"jin": 0.5, "suga": 0.9})
    )
    import os

    os.utime(tmp_path / "thresholds.json", ns=(1, 1))
    after = pipeline.identify(_photo_bytes())

    assert [member["name"] for member in before["members"]] == ["jin"]
    assert [member["name"] for member in after["members"]] == ["jin", "suga"]


def test_a_pipeline_that_does_not_follow_the_file_keeps_its_own_cuts(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    pipeline = _pipeline(tmp_path, face_model, gallery, thresholds)
    pinned = Pipeline(
        pipeline.bundle,
        pipeline.detector,
        max_upload_bytes=1 << 20,
        max_pixels=1 << 20,
        follow_thresholds_file=False,
    )

    save_thresholds(
        tmp_path, Thresholds(thresholds.face, thresholds.gallery, {"jin": 0.5, "suga": 0.9})
    )
    import os

    os.utime(tmp_path / "thresholds.json", ns=(1, 1))

    assert [m["name"] for m in pinned.identify(_photo_bytes())["members"]] == ["jin"]
    assert [m["name"] for m in pipeline.identify(_photo_bytes())["members"]] == ["jin", "suga"]
    assert pinned.current_thresholds() == thresholds


def test_photo_whose_every_face_is_named_gets_no_member_from_the_image(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    with_image_cuts = Thresholds(thresholds.face, thresholds.gallery, {"jin": 0.5, "suga": 0.5})
    pipeline = _pipeline(tmp_path, face_model, gallery, with_image_cuts, faces=[_face_at(0)])

    result = pipeline.identify(_photo_bytes())

    assert [member["name"] for member in result["members"]] == ["jin"]
    assert result["image_scores"]["suga"] == pytest.approx(0.9933)


def test_photo_without_faces_can_still_name_members_from_the_image(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    with_image_cuts = Thresholds(thresholds.face, thresholds.gallery, {"jin": 0.5, "suga": 0.5})
    pipeline = _pipeline(tmp_path, face_model, gallery, with_image_cuts, faces=[])

    result = pipeline.identify(_photo_bytes())

    assert result["faces"] == []
    assert result["members"] == [{"name": "suga", "score": 0.9933, "source": "image", "box": None}]


def test_a_refused_face_the_scene_model_backs_is_lifted_with_its_box(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    lifted_cuts = Thresholds(
        thresholds.face,
        thresholds.gallery,
        {"jin": 0.5, "suga": 0.5},
        lift=LiftCuts(face=0.0, image_share=0.5),
    )
    pipeline = _pipeline(tmp_path, face_model, gallery, lifted_cuts)

    result = pipeline.identify(_photo_bytes())

    # The grey face, nobody on its own cuts, takes suga (jin is named by the red face) and
    # keeps its box; the photo then has no face left unnamed, so the image adds nobody.
    assert [face["member"] for face in result["faces"]] == ["jin", "suga"]
    suga = result["members"][1]
    assert suga["name"] == "suga"
    assert suga["source"] == "face"
    assert suga["box"] == {"x_min": 150, "y_min": 0, "x_max": 300, "y_max": 150}
    assert len(result["members"]) == 2


def _three_member_pipeline(tmp_path: Path, lift: LiftCuts | None) -> Pipeline:
    """Red face jin, grey face refused; the scene model is sure of suga and v."""
    roster = ["jin", "suga", "v"]
    face_model = FaceModel(ColourBody(), descriptor_size=3, n_members=3)
    linear = face_model.head[-1]
    assert isinstance(linear, torch.nn.Linear)
    with torch.no_grad():
        linear.weight.copy_(
            torch.tensor([[10.0, -10.0, 0.0], [-10.0, 10.0, 0.0], [-10.0, -10.0, 0.0]])
        )
        linear.bias.zero_()
    face_model.eval()
    scene_model = SceneModel(ColourBody(), 3, 3)
    scene_linear = scene_model.head[-1]
    assert isinstance(scene_linear, torch.nn.Linear)
    with torch.no_grad():
        scene_linear.weight.zero_()
        scene_linear.bias.copy_(torch.tensor([-5.0, 5.0, 5.0]))
    descriptors = np.eye(3, dtype=np.float32)
    gallery = Gallery(descriptors, np.array([0, 1, 2]), 3, np.zeros(3, dtype=np.float32))
    cuts = {member: 0.6 for member in roster}
    thresholds = Thresholds(
        cuts, {member: -1.0 for member in roster}, {m: 0.5 for m in roster}, lift=lift
    )
    save_thresholds(tmp_path, thresholds)
    bundle = Bundle(
        tmp_path,
        {"name": "unit", "scene_model": SCENE_MANIFEST},
        roster,
        face_model,
        gallery,
        thresholds,
        scene_model.eval(),
    )
    detector = FixedDetector([_face_at(0), _face_at(150)])
    return Pipeline(bundle, detector, max_upload_bytes=1 << 20, max_pixels=1 << 20)


def test_a_photo_closed_by_a_lift_gets_no_member_from_the_image(tmp_path: Path) -> None:
    lifted = _three_member_pipeline(tmp_path / "lift", LiftCuts(face=0.4, image_share=0.5))
    plain = _three_member_pipeline(tmp_path / "plain", None)

    with_lift = lifted.identify(_photo_bytes())
    without = plain.identify(_photo_bytes())

    # Without the lift the grey face stays nobody, so the image adds both members it is sure of.
    assert [(m["name"], m["source"]) for m in without["members"]] == [
        ("jin", "face"),
        ("suga", "image"),
        ("v", "image"),
    ]
    # With it the grey face takes suga, its best free member; no face is left unnamed, so the
    # image adds nobody, v included.
    assert [(m["name"], m["source"]) for m in with_lift["members"]] == [
        ("jin", "face"),
        ("suga", "face"),
    ]


def test_the_pipeline_lifts_and_fuses_as_the_replay_from_its_unlifted_answer(
    tmp_path: Path,
) -> None:
    lift = LiftCuts(face=0.4, image_share=0.5)
    roster = ["jin", "suga", "v"]
    unlifted = _three_member_pipeline(tmp_path / "plain", None).identify(
        _photo_bytes(), top_k=len(roster)
    )
    lifted = _three_member_pipeline(tmp_path / "lift", lift).identify(_photo_bytes())
    probabilities, assigned = face_arrays(unlifted, roster)
    answers = SceneAnswers(
        pd.DataFrame({"kind": ["crop"]}),
        [unlifted],
        np.zeros((1, 3), dtype=bool),
        np.array([[m["source"] == "face" for m in unlifted["members"][:1]] + [False, False]]),
        np.array([[unlifted["image_scores"][member] for member in roster]], dtype=np.float32),
        np.array([len(unlifted["faces"])]),
        np.array([int((assigned == NOBODY).sum())]),
        [probabilities],
        [assigned],
    )
    cuts = np.full(3, 0.5, dtype=np.float32)

    replayed = lifted_answers(answers, roster, cuts, lift)
    fused = fused_answers(answers, roster, cuts, lift)

    assert replayed.results[0] is not None
    assert [face["member"] for face in replayed.results[0]["faces"]] == [
        face["member"] for face in lifted["faces"]
    ]
    assert {roster[index] for index in np.flatnonzero(fused[0])} == {
        member["name"] for member in lifted["members"]
    }
