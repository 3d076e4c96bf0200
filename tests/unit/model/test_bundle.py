import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data_tools.errors import BundleLoadError
from model import bundle as bundle_module
from model.bundle import load_bundle, save_bundle
from model.face_model import FaceEnsemble, FaceModel
from model.gallery import Gallery
from model.thresholds import Thresholds

from .conftest import ROSTER, ColourBody, colour_face_model


@pytest.fixture(autouse=True)
def colour_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_module, "build_face_body", lambda pretrained: ColourBody())


def _manifest() -> dict[str, object]:
    return {"name": "test-bundle", "roster": ROSTER, "face_model": {"descriptor_size": 3}}


def test_bundle_round_trip_keeps_weights_gallery_and_thresholds(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    bundle_dir = tmp_path / "bundle"

    save_bundle(
        bundle_dir,
        manifest=_manifest(),
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
    )
    loaded = load_bundle(bundle_dir)

    assert loaded.roster == ROSTER
    assert loaded.name == "test-bundle"
    assert loaded.thresholds.digest() == thresholds.digest()
    assert (loaded.gallery.descriptors == gallery.descriptors).all()
    crops = torch.rand(2, 3, 150, 150)
    assert torch.allclose(loaded.face_model(crops), face_model(crops))


def test_bundle_holds_no_pickle(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    save_bundle(
        tmp_path / "b",
        manifest=_manifest(),
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
    )

    names = sorted(path.name for path in (tmp_path / "b").iterdir())

    assert names == [
        "face_model.safetensors",
        "gallery.safetensors",
        "manifest.json",
        "thresholds.json",
    ]
    assert not list(tmp_path.glob(".b.*")), "no staging folder may be left behind"


def test_bundle_folder_can_be_read_by_other_users(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    bundle_dir = tmp_path / "b"

    save_bundle(
        bundle_dir,
        manifest=_manifest(),
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
    )

    assert bundle_dir.stat().st_mode & 0o777 == 0o755


def test_existing_bundle_is_not_overwritten_unless_asked(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    arguments = {
        "manifest": _manifest(),
        "face_model": face_model,
        "gallery": gallery,
        "thresholds": thresholds,
    }
    save_bundle(tmp_path / "b", **arguments)  # type: ignore[arg-type]

    with pytest.raises(BundleLoadError, match="exists"):
        save_bundle(tmp_path / "b", **arguments)  # type: ignore[arg-type]
    save_bundle(tmp_path / "b", overwrite=True, **arguments)  # type: ignore[arg-type]

    assert load_bundle(tmp_path / "b").roster == ROSTER


def test_missing_bundle_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BundleLoadError, match="memberlens train"):
        load_bundle(tmp_path / "nowhere")


def test_truncated_weights_are_a_load_error(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    save_bundle(
        tmp_path / "b",
        manifest=_manifest(),
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
    )
    weights = tmp_path / "b" / "face_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    with pytest.raises(BundleLoadError, match="safetensors"):
        load_bundle(tmp_path / "b")


def test_manifest_of_another_format_version_is_refused(
    tmp_path: Path, face_model: FaceModel, gallery: Gallery, thresholds: Thresholds
) -> None:
    save_bundle(
        tmp_path / "b",
        manifest=_manifest(),
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
    )
    manifest_path = tmp_path / "b" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))

    with pytest.raises(BundleLoadError, match="version"):
        load_bundle(tmp_path / "b")


def test_bundle_of_an_ensemble_loads_back_as_the_same_ensemble(
    tmp_path: Path, face_model: FaceModel, thresholds: Thresholds
) -> None:
    second = colour_face_model()
    with torch.no_grad():
        second.head[-1].bias.fill_(1.0)  # type: ignore[operator]
    ensemble = FaceEnsemble([face_model, second])
    wide_gallery = Gallery.from_raw(
        np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]], np.float32),
        np.array([0, 1]),
        2,
    )
    manifest = {**_manifest(), "face_model": {"descriptor_size": 3, "models": 2}}

    save_bundle(
        tmp_path / "b",
        manifest=manifest,
        face_model=ensemble,
        gallery=wide_gallery,
        thresholds=thresholds,
    )
    loaded = load_bundle(tmp_path / "b")

    assert isinstance(loaded.face_model, FaceEnsemble)
    crops = torch.rand(2, 3, 150, 150)
    assert torch.allclose(loaded.face_model(crops), ensemble(crops), atol=1e-5)


@pytest.mark.parametrize(
    "face_section",
    [
        {"descriptor_size": 3, "models": 0},
        {"descriptor_size": 3, "models": "2"},
        {"descriptor_size": 3, "models": True},
        {"descriptor_size": 3, "models": 17},
        {"descriptor_size": "3"},
        None,
    ],
)
def test_manifest_with_a_bad_face_model_section_is_a_load_error(
    tmp_path: Path,
    face_model: FaceModel,
    gallery: Gallery,
    thresholds: Thresholds,
    face_section: object,
) -> None:
    manifest = {**_manifest(), "face_model": face_section}
    save_bundle(
        tmp_path / "b",
        manifest=manifest,
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
    )

    with pytest.raises(BundleLoadError, match=r"face_model"):
        load_bundle(tmp_path / "b")
