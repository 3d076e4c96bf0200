"""Write and read model bundles: a folder with the manifest, plain-tensor weights and thresholds."""

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from data_tools.atomic import write_json_atomic, write_with_atomic
from data_tools.errors import BundleLoadError, MemberlensError
from model.face_model import FaceEnsemble, FaceModel, FaceScorer, build_face_body
from model.gallery import Gallery
from model.scene import SceneModel, build_scene_model
from model.thresholds import Thresholds, load_thresholds, save_thresholds

logger = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
FACE_WEIGHTS_FILE = "face_model.safetensors"
GALLERY_FILE = "gallery.safetensors"
BUNDLE_FOLDER_MODE = 0o755
SCENE_WEIGHTS_FILE = "scene_model.safetensors"


@dataclass
class Bundle:
    """A loaded bundle: everything the inference pipeline needs."""

    path: Path
    manifest: dict[str, Any]
    roster: list[str]
    face_model: FaceScorer
    gallery: Gallery
    thresholds: Thresholds
    scene_model: SceneModel | None = None

    @property
    def name(self) -> str:
        """Return the bundle's name, as answers report it."""
        return str(self.manifest["name"])

    @property
    def scene_size_px(self) -> int:
        """Return the side of the square the scene model sees the whole photo at."""
        return int(self.manifest.get("scene_model", {}).get("input_size_px", 0))

    @property
    def scene_architecture(self) -> str:
        """Return the scene model's architecture name (empty without a scene model)."""
        return str(self.manifest.get("scene_model", {}).get("architecture", ""))


def save_bundle(
    bundle_dir: Path,
    *,
    manifest: dict[str, Any],
    face_model: FaceScorer,
    gallery: Gallery,
    thresholds: Thresholds,
    scene_model: SceneModel | None = None,
    overwrite: bool = False,
) -> None:
    """Write a complete bundle into `bundle_dir`.

    A scene model, when given, is written beside the face model; the manifest must then
    describe it under `scene_model` (architecture, input_size_px), which loading reads back.

    The files are written into a temporary folder beside `bundle_dir`, which is then renamed,
    so that a reader finds either no bundle, the old one, or the whole new one.

    Raises:
        BundleLoadError: `bundle_dir` exists and `overwrite` is false.
    """
    if bundle_dir.exists() and not overwrite:
        raise BundleLoadError(f"{bundle_dir} exists; choose another folder or pass --overwrite")
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle_dir.name}.", dir=bundle_dir.parent))
    # mkdtemp makes a folder only its owner can enter; a bundle is read by the service, which
    # may run as another user (compose.yaml's non-root user reading a mounted folder).
    staging.chmod(BUNDLE_FOLDER_MODE)
    try:
        full_manifest = {**manifest, "format_version": BUNDLE_FORMAT_VERSION}
        write_json_atomic(staging / MANIFEST_FILE, full_manifest)
        weights = plain_tensors(face_model)
        write_with_atomic(staging / FACE_WEIGHTS_FILE, lambda path: save_file(weights, str(path)))
        gallery_tensors = {
            "descriptors": torch.from_numpy(gallery.descriptors.astype(np.float32)),
            "member_indices": torch.from_numpy(gallery.member_indices.astype(np.int64)),
            "center": torch.from_numpy(gallery.center.astype(np.float32)),
        }
        write_with_atomic(
            staging / GALLERY_FILE, lambda path: save_file(gallery_tensors, str(path))
        )
        if scene_model is not None:
            scene_weights = plain_tensors(scene_model)
            write_with_atomic(
                staging / SCENE_WEIGHTS_FILE, lambda path: save_file(scene_weights, str(path))
            )
        save_thresholds(staging, thresholds)
        _replace_folder(staging, bundle_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "bundle written", extra={"bundle": str(bundle_dir), "bundle_name": manifest.get("name")}
    )


def load_bundle(bundle_dir: Path) -> Bundle:
    """Read a bundle and build its face model on the CPU, in eval mode.

    Raises:
        BundleLoadError: a file is missing or unreadable, or the files disagree with each other.
    """
    if not bundle_dir.is_dir():
        raise BundleLoadError(
            f"no model bundle at {bundle_dir}; train one with `memberlens train` or pass --bundle"
        )
    manifest = read_manifest(bundle_dir)
    roster = _roster_of(manifest, bundle_dir)
    face_model = _empty_face_model(manifest, bundle_dir, len(roster))
    _load_weights_into(face_model, bundle_dir / FACE_WEIGHTS_FILE, "the face model of this roster")

    gallery_tensors = _load_tensors(bundle_dir / GALLERY_FILE)
    try:
        gallery = Gallery(
            descriptors=gallery_tensors["descriptors"].numpy().astype(np.float32),
            member_indices=gallery_tensors["member_indices"].numpy().astype(np.int64),
            n_members=len(roster),
            center=gallery_tensors["center"].numpy().astype(np.float32),
        )
    except KeyError as err:
        raise BundleLoadError(f"{bundle_dir / GALLERY_FILE} lacks tensor {err}") from err

    thresholds = load_thresholds(bundle_dir, roster)
    scene_model = _load_scene_model(bundle_dir, manifest, len(roster))
    logger.info(
        "bundle loaded",
        extra={
            "bundle": manifest.get("name"),
            "members": len(roster),
            "has_scene_model": scene_model is not None,
        },
    )
    return Bundle(bundle_dir, manifest, roster, face_model, gallery, thresholds, scene_model)


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """Read and check a bundle's `manifest.json`.

    Raises:
        BundleLoadError: the manifest is missing, unreadable, or from another format version.
    """
    path = bundle_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BundleLoadError(f"{path} is missing: {bundle_dir} is not a model bundle") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleLoadError(
            f"{path} is not readable JSON ({err}); the bundle is damaged"
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise BundleLoadError(
            f"{path} is not a version {BUNDLE_FORMAT_VERSION} bundle manifest; retrain the bundle"
        )
    return manifest


def plain_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Return a module's weights as detached, contiguous tensors, ready for safetensors."""
    return {name: tensor.detach().contiguous() for name, tensor in module.state_dict().items()}


def _roster_of(manifest: dict[str, Any], bundle_dir: Path) -> list[str]:
    roster = manifest.get("roster")
    if not isinstance(roster, list) or not roster or not all(isinstance(m, str) for m in roster):
        raise BundleLoadError(f"{bundle_dir / MANIFEST_FILE} has no list of member slugs")
    return list(roster)


def _empty_face_model(manifest: dict[str, Any], bundle_dir: Path, n_members: int) -> FaceScorer:
    """Build the face model a manifest describes, one model or an ensemble, to load weights into."""
    where = bundle_dir / MANIFEST_FILE
    face_section = manifest.get("face_model", {})
    if not isinstance(face_section, dict):
        raise BundleLoadError(f"{where}: `face_model` must be an object, found {face_section!r}")
    descriptor_size = face_section.get("descriptor_size", 128)
    n_models = face_section.get("models", 1)
    for key, value, high in (("descriptor_size", descriptor_size, 4096), ("models", n_models, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise BundleLoadError(
                f"{where}: `face_model.{key}` must be a whole number from 1 to {high}, "
                f"found {value!r}"
            )
    models = [
        FaceModel(build_face_body(pretrained=False), descriptor_size, n_members)
        for _ in range(n_models)
    ]
    return models[0] if n_models == 1 else FaceEnsemble(models)


def _load_scene_model(
    bundle_dir: Path, manifest: dict[str, Any], n_members: int
) -> SceneModel | None:
    """Build the bundle's scene model, or return None for a bundle of faces only."""
    section = manifest.get("scene_model")
    if section is None:
        return None
    if not isinstance(section, dict) or not isinstance(section.get("input_size_px"), int):
        raise BundleLoadError(
            f"{bundle_dir / MANIFEST_FILE}: `scene_model` must give architecture and input_size_px"
        )
    try:
        scene_model = build_scene_model(
            str(section.get("architecture")), n_members, pretrained=False
        )
    except MemberlensError as err:
        raise BundleLoadError(f"{bundle_dir / MANIFEST_FILE}: {err}") from err
    _load_weights_into(scene_model, bundle_dir / SCENE_WEIGHTS_FILE, "the scene model it names")
    return scene_model


def _load_weights_into(module: torch.nn.Module, path: Path, what: str) -> None:
    """Load a safetensors file into `module` strictly and put it in eval mode."""
    try:
        module.load_state_dict(_load_tensors(path), strict=True)
    except RuntimeError as err:
        raise BundleLoadError(f"{path} does not fit {what}: {err}") from err
    module.eval()


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError as err:
        raise BundleLoadError(f"{path} is missing; the bundle is incomplete") from err
    except (OSError, SafetensorError, ValueError) as err:
        raise BundleLoadError(f"{path} is not a readable safetensors file ({err})") from err


def _replace_folder(staging: Path, bundle_dir: Path) -> None:
    if not bundle_dir.exists():
        staging.rename(bundle_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{bundle_dir.name}.old.", dir=bundle_dir.parent))
    retired.rmdir()
    bundle_dir.rename(retired)
    staging.rename(bundle_dir)
    shutil.rmtree(retired, ignore_errors=True)
