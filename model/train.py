"""Train the face model with fastai, tune its thresholds, and write the bundle."""

import logging
import platform
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
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

from data_tools.errors import InvalidParameterError
from data_tools.roster import load_roster
from model.assign import NOBODY
from model.bundle import save_bundle
from model.data import (
    TRAIN,
    VALID,
    PreparedFaces,
    build_dataloaders,
    read_prepared,
    targets_of,
)
from model.face_body import DESCRIPTOR_SIZE
from model.face_model import (
    FACE_ARCHITECTURE,
    FaceEnsemble,
    FaceModel,
    FaceScorer,
    body_and_head_parameters,
    build_face_body,
)
from model.fingerprint import fingerprint_file
from model.gallery import Gallery
from model.metrics import member_metrics, precision_recall
from model.naming import name_faces_by_photo
from model.thresholds import Thresholds
from model.train_workers import train_side_by_side, worker_count
from model.tuning import FaceScores, describe_chips, score_faces, split_faces, tune_cuts

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
    models: int = 2
    phone_share: float = 0.0
    overwrite: bool = False


def train_bundle(config: TrainConfig) -> dict[str, Any]:
    """Train, tune thresholds on the valid split, and write a bundle; return its metrics."""
    logger.info("training started", extra={"config": _config_json(config)})
    started = time.perf_counter()
    if config.models < 1:
        raise InvalidParameterError(
            f"Expected --models of at least 1, but got {config.models}; use 1 for a single model."
        )
    if not 0.0 <= config.phone_share <= 1.0:
        raise InvalidParameterError(
            f"Expected --phone-share in [0, 1], but got {config.phone_share}; 0 turns it off."
        )
    roster = load_roster(config.roster_path) if config.roster_path else None
    roster_slugs = roster.slugs if roster else None
    prepared = read_prepared(config.prepared_dir, roster_slugs)
    models = train_side_by_side(
        model_seeds(config),
        partial(_train_seed, config, roster_slugs),
        partial(_untrained_face_model, len(prepared.roster)),
        workers=worker_count(config.models),
    )
    face_model: FaceScorer = models[0] if len(models) == 1 else FaceEnsemble(models)

    train_faces = prepared.faces[prepared.faces["split"] == TRAIN]
    gallery = build_gallery(face_model, prepared, train_faces)
    valid_scores = score_faces(face_model, gallery, prepared, split_faces(prepared, VALID))
    thresholds = tune_cuts(prepared.roster, valid_scores, stranger_cost=config.stranger_cost)
    metrics = valid_metrics(prepared.roster, valid_scores, thresholds)
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


def model_seeds(config: TrainConfig) -> list[int]:
    """Return the seed of each face model of the bundle: `seed`, `seed + 1`, ..."""
    return [config.seed + index for index in range(config.models)]


def train_face_model(prepared: PreparedFaces, config: TrainConfig, seed: int) -> FaceModel:
    """Fine-tune one face model: the head with the body frozen, then everything."""
    set_seed(seed, reproducible=True)
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
    logger.info("face model trained", extra={"seed": seed})
    return face_model


def build_learner(prepared: PreparedFaces, config: TrainConfig) -> Learner:
    """Build the fastai learner: pretrained dlib body, fresh head, multilabel loss and metrics."""
    dataloaders = build_dataloaders(
        prepared, batch_size=config.batch_size, phone_share=config.phone_share
    )
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


def build_gallery(model: FaceScorer, prepared: PreparedFaces, faces: Any) -> Gallery:
    """Describe the single-member training faces; they are what new faces are compared with."""
    single = faces[faces["labels"].str.split().str.len() == 1]
    descriptors, _ = describe_chips(model, prepared, single)
    member_indices = np.array(
        [prepared.roster.index(labels.strip()) for labels in single["labels"]], dtype=np.int64
    )
    return Gallery.from_raw(descriptors, member_indices, len(prepared.roster))


def valid_metrics(roster: list[str], scores: FaceScores, thresholds: Thresholds) -> dict[str, Any]:
    """Name scored valid chips as the pipeline would and measure them with `chip_metrics`."""
    named = name_faces_by_photo(
        scores.photos, roster, scores.probabilities, scores.similarities, thresholds
    )
    return chip_metrics(roster, named, targets_of(scores.faces, roster))


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
            "models": config.models,
            "seeds": model_seeds(config),
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


def _train_seed(config: TrainConfig, roster_slugs: list[str] | None, seed: int) -> FaceModel:
    """Read the prepared faces and train one face model; runs in a worker process too."""
    return train_face_model(read_prepared(config.prepared_dir, roster_slugs), config, seed)


def _untrained_face_model(n_members: int) -> FaceModel:
    return FaceModel(build_face_body(pretrained=False), DESCRIPTOR_SIZE, n_members)


def _ignore_row(row: object) -> None:
    """Swallow fastai's printed results table; `EpochLogger` logs the same figures."""


def _config_json(config: TrainConfig) -> dict[str, Any]:
    fields = asdict(config)
    return {key: str(value) if isinstance(value, Path) else value for key, value in fields.items()}


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
