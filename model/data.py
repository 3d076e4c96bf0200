"""Read a prepared folder (faces.csv and chips) and build fastai data loaders over its chips."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fastai.data.block import DataBlock, MultiCategoryBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import ColSplitter, Normalize
from fastai.vision.augment import aug_transforms
from fastai.vision.data import ImageBlock
from numpy.typing import NDArray

from data_tools.errors import DatasetError
from model.face_body import DLIB_MEAN_RGB, DLIB_SCALE

logger = logging.getLogger(__name__)

FACES_FILE = "faces.csv"
PHOTOS_FILE = "photos.csv"
TRAIN, VALID, TEST = "train", "valid", "test"


@dataclass(frozen=True)
class PreparedFaces:
    """The faces of a prepared folder.

    Attributes:
        root: the prepared folder; `chip` paths are relative to it.
        faces: one row per face: chip, photo, source, split, labels, box, group_key, ...
        roster: the members that appear in any label, sorted.
    """

    root: Path
    faces: pd.DataFrame
    roster: list[str]


def read_prepared(root: Path) -> PreparedFaces:
    """Read `faces.csv` of a folder written by `memberlens prepare`.

    Raises:
        DatasetError: the folder or its faces file is missing, or it names no member.
    """
    path = root / FACES_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens prepare --out {root}` first")
    faces = pd.read_csv(path, keep_default_na=False, dtype={"labels": str, "split": str})
    required = {"chip", "split", "labels", "source", "group_key"}
    missing = required - set(faces.columns)
    if missing:
        raise DatasetError(f"{path} lacks columns {sorted(missing)}; rerun `memberlens prepare`")
    roster = sorted({member for labels in faces["labels"] for member in labels.split()})
    if not roster:
        raise DatasetError(f"{path} has no labelled member face; nothing to train on")
    return PreparedFaces(root, faces, roster)


def labels_of(row: pd.Series) -> list[str]:
    """Return a face's member slugs; an empty list is a face of nobody known."""
    return str(row["labels"]).split()


def targets_of(faces: pd.DataFrame, roster: list[str]) -> NDArray[np.bool_]:
    """Return (n_faces, n_members) multi-hot labels in roster order."""
    index = {member: position for position, member in enumerate(roster)}
    targets = np.zeros((len(faces), len(roster)), dtype=bool)
    for row_number, labels in enumerate(faces["labels"]):
        for member in str(labels).split():
            if member in index:
                targets[row_number, index[member]] = True
    return targets


def build_dataloaders(
    prepared: PreparedFaces, *, batch_size: int, augment: bool = True
) -> DataLoaders:
    """Build train and valid loaders over the chips of the `train` and `valid` splits.

    Augmentation is what a real photo could show: flips, small rotations and zooms, and
    lighting; no warps, which would bend a face out of the shape the aligner gives it.
    """
    faces = prepared.faces[prepared.faces["split"].isin([TRAIN, VALID])].copy()
    faces["is_valid"] = faces["split"] == VALID
    if not faces["is_valid"].any() or faces["is_valid"].all():
        raise DatasetError("training needs faces in both the train and the valid split")

    batch_transforms = []
    if augment:
        batch_transforms += aug_transforms(
            do_flip=True,
            max_rotate=10.0,
            max_zoom=1.1,
            max_lighting=0.3,
            max_warp=0.0,
            p_affine=0.75,
        )
    batch_transforms.append(normalize_transform())
    block = DataBlock(
        blocks=(ImageBlock, MultiCategoryBlock(vocab=prepared.roster)),
        get_x=lambda row: prepared.root / row["chip"],
        get_y=labels_of,
        splitter=ColSplitter("is_valid"),
        batch_tfms=batch_transforms,
    )
    return block.dataloaders(faces, bs=batch_size, num_workers=0, shuffle=True)


def normalize_transform() -> Normalize:
    """Return fastai's Normalize set to dlib's input normalisation.

    fastai scales pixels to [0, 1] first, so dlib's `(pixel - mean) * scale` on 0-255 pixels
    becomes `(x - mean / 255) / (1 / (255 * scale))`.
    """
    mean = [channel_mean / 255.0 for channel_mean in DLIB_MEAN_RGB]
    std = [1.0 / (255.0 * DLIB_SCALE)] * 3
    return Normalize.from_stats(mean, std, cuda=False)
