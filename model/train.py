"""Train the face model with fastai, tune its thresholds, and write the bundle."""

import logging
import platform
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastai
import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.callback.schedule import lr_find  # noqa: F401  (adds Learner.lr_find)
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat
from fastai.metrics import accuracy_multi
from fastai.torch_core import set_seed
from PIL import Image

from data_tools.roster import load_roster
from model.assign import NOBODY, name_faces
from model.bundle import load_bundle, save_bundle
from model.data import (
    TRAIN,
    VALID,
    PreparedFaces,
    build_dataloaders,
    read_prepared,
    targets_of,
)
from model.face_body import DESCRIPTOR_SIZE, chips_to_tensor
from model.face_model import (
    FACE_ARCHITECTURE,
    FaceModel,
    body_and_head_parameters,
    build_face_body,
    describe_crops,
)
from model.fingerprint import fingerprint_file
from model.gallery import Gallery
from model.metrics import member_metrics, precision_recall
from model.thresholds import Thresholds, save_thresholds, tune_thresholds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved into the bundle with the seed."""

    prepared_dir: Path
    bundle_dir: Path
    roster_path: Path | None = None
    bundle_name: str | None = None
    seed: int = 0
    batch_size: int = 32
    head_epochs: int = 2
    head_lr: float = 3e-3
    epochs: int = 10
    body_lr: float = 5e-5
    weight_decay: float = 0.01
    stranger_cost: float = 2.0
    overwrite: bool = False


def train_bundle(config: TrainConfig) -> dict[str, Any]:
    """Train, tune thresholds on the valid split, and write a bundle; return its metrics."""
    logger.info("training started", extra={"config": _config_json(config)})
    started = time.perf_counter()
    set_seed(config.seed, reproducible=True)
    roster = load_roster(config.roster_path) if config.roster_path else None
    prepared = read_prepared(config.prepared_dir, roster.slugs if roster else None)
    learner = build_learner(prepared, config)

    learner.freeze()
    learner.fit_one_cycle(config.head_epochs, config.head_lr, wd=config.weight_decay)
    learner.unfreeze()
    # The pretrained body wants a much smaller rate than the head; a large one jolts it.
    learner.fit_one_cycle(
        config.epochs, slice(config.body_lr, config.head_lr / 3), wd=config.weight_decay
    )
    face_model = learner.model
    assert isinstance(face_model, FaceModel)

    train_faces = prepared.faces[prepared.faces["split"] == TRAIN]
    valid_faces = prepared.faces[prepared.faces["split"] == VALID]
    gallery = build_gallery(face_model, prepared, train_faces)
    valid_descriptors, valid_probabilities = _describe_chips(face_model, prepared, valid_faces)
    valid_similarities = gallery.similarities(valid_descriptors)
    valid_targets = targets_of(valid_faces, prepared.roster)
    thresholds = tune_thresholds(
        prepared.roster,
        valid_probabilities,
        valid_similarities,
        np.asarray(valid_targets.any(axis=1), dtype=bool),
        stranger_cost=config.stranger_cost,
    )
    named = name_faces_by_photo(
        valid_faces["photo"].to_numpy(),
        valid_probabilities,
        thresholds.is_known(prepared.roster, valid_probabilities, valid_similarities),
    )
    metrics = chip_metrics(prepared.roster, named, valid_targets)
    metrics["training_seconds"] = round(time.perf_counter() - started, 1)

    manifest = build_manifest(config, prepared, metrics)
    if roster is not None:
        manifest["roster_file"] = {**roster.to_dict(), "fingerprint": roster.fingerprint()}
    save_bundle(
        config.bundle_dir,
        manifest=manifest,
        face_model=face_model,
        gallery=gallery,
        thresholds=thresholds,
        overwrite=config.overwrite,
    )
    logger.info("training finished", extra={"metrics": metrics})
    return metrics


def build_learner(prepared: PreparedFaces, config: TrainConfig) -> Learner:
    """Build the fastai learner: pretrained dlib body, fresh head, multilabel loss and metrics."""
    dataloaders = build_dataloaders(prepared, batch_size=config.batch_size)
    model = FaceModel(build_face_body(pretrained=True), DESCRIPTOR_SIZE, len(prepared.roster))
    learner = Learner(
        dataloaders,
        model,
        loss_func=BCEWithLogitsLossFlat(),
        metrics=[accuracy_multi, *member_metrics(prepared.roster)],
        splitter=body_and_head_parameters,
        wd=config.weight_decay,
    )
    # Epoch summaries go to the log; fastai's own progress bar and table would only clutter it.
    learner.remove_cbs([ProgressCallback])
    learner.logger = _ignore_row
    learner.add_cb(EpochLogger())
    return learner


class EpochLogger(Callback):
    """Log each epoch's losses and metrics as one structured INFO line."""

    order = 60

    def after_epoch(self) -> None:
        """Log the row fastai's recorder has just written."""
        names = self.learn.recorder.metric_names[1:-1]
        values = self.learn.recorder.log[1:-1]
        summary = {
            str(name): round(float(value), 4)
            for name, value in zip(names, values, strict=False)
            if isinstance(value, int | float | np.floating)
        }
        logger.info("epoch finished", extra={"epoch": self.epoch + 1, "figures": summary})


def build_gallery(model: FaceModel, prepared: PreparedFaces, faces: Any) -> Gallery:
    """Describe the single-member training faces; they are what new faces are compared with."""
    single = faces[faces["labels"].str.split().str.len() == 1]
    descriptors, _ = _describe_chips(model, prepared, single)
    member_indices = np.array(
        [prepared.roster.index(labels.strip()) for labels in single["labels"]], dtype=np.int64
    )
    return Gallery.from_raw(descriptors, member_indices, len(prepared.roster))


def name_faces_by_photo(
    photos: np.ndarray, probabilities: np.ndarray, is_known: np.ndarray
) -> np.ndarray:
    """Name the faces of each photo as the pipeline does: known faces, one-to-one per photo.

    Returns:
        (n_faces,) member index per face, or `NOBODY`.
    """
    named = np.full(len(photos), NOBODY, dtype=np.int64)
    for photo in dict.fromkeys(photos.tolist()):
        rows = np.flatnonzero(photos == photo)
        named[rows] = name_faces(probabilities[rows], is_known[rows])
    return named


def chip_metrics(roster: list[str], named: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Measure the names given to validation chips (detection misses are not counted here)."""
    named_onehot = np.zeros_like(targets)
    rows = np.flatnonzero(named != NOBODY)
    named_onehot[rows, named[rows]] = True
    is_stranger = ~targets.any(axis=1)
    member_rows = ~is_stranger
    correct = (named_onehot == targets).all(axis=1)
    return {
        "valid_member_faces": int(member_rows.sum()),
        "valid_stranger_faces": int(is_stranger.sum()),
        "chip_accuracy_members": float(correct[member_rows].mean()) if member_rows.any() else None,
        "chip_strangers_named": float(named_onehot[is_stranger].any(axis=1).mean())
        if is_stranger.any()
        else None,
        "per_member": precision_recall(named_onehot, targets, roster),
    }


def build_manifest(
    config: TrainConfig, prepared: PreparedFaces, metrics: dict[str, Any]
) -> dict[str, Any]:
    """Describe the bundle: roster, architecture, data fingerprint, config, metrics, versions."""
    created = datetime.now(UTC)
    name = config.bundle_name or f"{config.bundle_dir.name}-{created:%Y-%m-%d}"
    counts = prepared.faces.groupby(["split", "source"]).size()
    return {
        "name": name,
        "created": created.isoformat(timespec="seconds"),
        "roster": prepared.roster,
        "face_model": {
            "architecture": FACE_ARCHITECTURE,
            "input_size_px": 150,
            "descriptor_size": DESCRIPTOR_SIZE,
            "pretrained": "dlib_face_recognition_resnet_model_v1 (face-recognition-models 0.3.0)",
        },
        "detector": {"name": "mtcnn", "package": "facenet-pytorch 2.5.3"},
        "training": {
            "config": _config_json(config),
            "data_fingerprint": fingerprint_file(prepared.root / "faces.csv"),
            "faces": {f"{split}/{source}": int(n) for (split, source), n in counts.items()},
        },
        "metrics": metrics,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "fastai": fastai.__version__,
        },
    }


def _describe_chips(
    model: FaceModel, prepared: PreparedFaces, faces: Any
) -> tuple[np.ndarray, np.ndarray]:
    chips = np.zeros((len(faces), 150, 150, 3), dtype=np.uint8)
    for row_number, chip in enumerate(faces["chip"]):
        with Image.open(prepared.root / chip) as image:
            chips[row_number] = np.asarray(image.convert("RGB"))
    return describe_crops(model, chips_to_tensor(chips))


def _ignore_row(row: object) -> None:
    """Swallow fastai's printed results table; `EpochLogger` logs the same figures."""


def _config_json(config: TrainConfig) -> dict[str, Any]:
    fields = asdict(config)
    return {key: str(value) if isinstance(value, Path) else value for key, value in fields.items()}


def retune_thresholds(bundle_dir: Path, prepared_dir: Path, *, stranger_cost: float) -> Thresholds:
    """Retune a bundle's thresholds on the valid split and rewrite them atomically.

    The prepared folder should be the one the bundle was trained on: with another split, faces
    it trained on could end up in the tuning set. A differing fingerprint is logged as a warning.
    """
    bundle = load_bundle(bundle_dir)
    prepared = read_prepared(prepared_dir)
    trained_on = bundle.manifest.get("training", {}).get("data_fingerprint")
    if trained_on != fingerprint_file(prepared.root / "faces.csv"):
        logger.warning(
            "prepared faces differ from the ones the bundle was trained on",
            extra={"bundle": str(bundle_dir), "prepared": str(prepared_dir)},
        )
    valid_faces = prepared.faces[prepared.faces["split"] == VALID]
    descriptors, probabilities = _describe_chips(bundle.face_model, prepared, valid_faces)
    thresholds = tune_thresholds(
        bundle.roster,
        probabilities,
        bundle.gallery.similarities(descriptors),
        np.asarray(targets_of(valid_faces, bundle.roster).any(axis=1), dtype=bool),
        stranger_cost=stranger_cost,
    )
    save_thresholds(bundle_dir, thresholds)
    return thresholds


def find_learning_rate(
    prepared_dir: Path, plot_path: Path, *, batch_size: int, seed: int, is_unfrozen: bool
) -> dict[str, float]:
    """Run fastai's `lr_find`, save its plot as PNG, and return the suggested rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    set_seed(seed, reproducible=True)
    prepared = read_prepared(prepared_dir)
    config = TrainConfig(prepared_dir=prepared_dir, bundle_dir=plot_path, batch_size=batch_size)
    learner = build_learner(prepared, config)
    if is_unfrozen:
        learner.unfreeze()
    else:
        learner.freeze()
    suggestion = learner.lr_find(show_plot=False)
    learner.recorder.plot_lr_find()
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    plt.savefig(plot_path, dpi=100)
    plt.close("all")
    return {"valley": float(suggestion.valley)}
