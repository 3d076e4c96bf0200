"""Read a folder of scene photos (from `memberlens scene-photos`) and build fastai loaders on it."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fastai.data.block import DataBlock, MultiCategoryBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import ColSplitter, Normalize
from fastai.vision.augment import RandomResizedCrop, aug_transforms
from fastai.vision.data import ImageBlock
from numpy.typing import NDArray

from data_tools.errors import DatasetError
from data_tools.scene_photos import SCENE_FILE
from model.scene import NORMALISATION

logger = logging.getLogger(__name__)

# RandomResizedCrop keeps at least this share of a training photo. A smaller share would often
# cut a labelled member out of the photo while the label still names them.
MIN_CROP_SCALE = 0.75
# Aspect ratios a training crop may take: wide enough for whole group photos to be squashed.
CROP_RATIOS = (0.4, 2.5)


@dataclass(frozen=True)
class ScenePhotos:
    """The photos of a scene folder: `image` paths are relative to `root`."""

    root: Path
    table: pd.DataFrame

    def split(self, name: str) -> pd.DataFrame:
        """Return the rows of one split (`train` or `valid`), in file order."""
        return self.table[self.table["split"] == name].reset_index(drop=True)


def read_scene_photos(root: Path, roster: list[str]) -> ScenePhotos:
    """Read `scene.csv` and check its labels against the roster.

    Raises:
        DatasetError: the file is missing, lacks columns, or names someone not in the roster.
    """
    path = root / SCENE_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens scene-photos --out {root}` first")
    table = pd.read_csv(path, keep_default_na=False, dtype={"labels": str, "degraded": str})
    missing = {"image", "split", "kind", "labels", "boxes"} - set(table.columns)
    if missing:
        raise DatasetError(f"{path} lacks columns {sorted(missing)}; rerun `scene-photos`")
    found = {member for labels in table["labels"] for member in labels.split()}
    unknown = sorted(found - set(roster))
    if unknown:
        raise DatasetError(f"{path} labels {', '.join(unknown)}, who are not in the roster")
    return ScenePhotos(root, table)


def scene_targets(rows: pd.DataFrame, roster: list[str]) -> NDArray[np.bool_]:
    """Return (n_photos, n_members) multi-hot labels in roster order."""
    index = {member: position for position, member in enumerate(roster)}
    targets = np.zeros((len(rows), len(roster)), dtype=bool)
    for row_number, labels in enumerate(rows["labels"]):
        for member in str(labels).split():
            targets[row_number, index[member]] = True
    return targets


def labelled_boxes(row: pd.Series) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Return a scene photo's labelled head boxes as (member, box) pairs."""
    return [
        (box["member"], (box["x_min"], box["y_min"], box["x_max"], box["y_max"]))
        for box in json.loads(row["boxes"])
    ]


def build_scene_dataloaders(
    photos: ScenePhotos,
    roster: list[str],
    *,
    size_px: int,
    architecture: str,
    batch_size: int,
) -> DataLoaders:
    """Build train and valid loaders over whole scene photos.

    Training photos get a random crop of most of the photo squashed to `size_px`, flips,
    small rotations, zooms and warps, and lighting changes; valid photos are squashed whole,
    as the service does.

    Raises:
        DatasetError: the train or the valid split is empty.
    """
    rows = photos.table[photos.table["split"].isin(["train", "valid"])].copy()
    rows["is_valid"] = rows["split"] == "valid"
    if not rows["is_valid"].any() or rows["is_valid"].all():
        raise DatasetError("scene training needs photos in both the train and the valid split")
    mean, std = NORMALISATION[architecture]
    root = photos.root
    block = DataBlock(
        blocks=(ImageBlock, MultiCategoryBlock(vocab=roster)),
        get_x=lambda row: root / row["image"],
        # A lambda, not an annotated function: fastai dispatches on annotations.
        get_y=lambda row: str(row["labels"]).split(),
        splitter=ColSplitter("is_valid"),
        item_tfms=[
            RandomResizedCrop(size_px, min_scale=MIN_CROP_SCALE, ratio=CROP_RATIOS, val_xtra=0.0)
        ],
        batch_tfms=[
            *aug_transforms(max_rotate=10.0, max_zoom=1.1, max_lighting=0.3, max_warp=0.1),
            Normalize.from_stats(list(mean), list(std), cuda=False),
        ],
    )
    return block.dataloaders(rows, bs=batch_size, num_workers=0, shuffle=True)
