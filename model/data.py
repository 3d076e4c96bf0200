"""Read a prepared folder (faces.csv and chips) and build fastai data loaders over its chips."""

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fastai.data.block import DataBlock, MultiCategoryBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import ColSplitter, Normalize
from fastai.vision.augment import RandTransform, aug_transforms
from fastai.vision.core import PILImage
from fastai.vision.data import ImageBlock
from numpy.typing import NDArray
from PIL import Image, ImageFilter

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


def read_prepared(root: Path, roster: list[str] | None = None) -> PreparedFaces:
    """Read `faces.csv` of a folder written by `memberlens prepare`.

    Args:
        root: the prepared folder.
        roster: the members in label order; None takes the labels found, sorted.

    Raises:
        DatasetError: the folder or its faces file is missing, it names no member, or it
            names one that is not in `roster`.
    """
    path = root / FACES_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens prepare --out {root}` first")
    faces = pd.read_csv(path, keep_default_na=False, dtype={"labels": str, "split": str})
    required = {"chip", "split", "labels", "source", "group_key"}
    missing = required - set(faces.columns)
    if missing:
        raise DatasetError(f"{path} lacks columns {sorted(missing)}; rerun `memberlens prepare`")
    found = sorted({member for labels in faces["labels"] for member in labels.split()})
    if not found:
        raise DatasetError(f"{path} has no labelled member face; nothing to train on")
    if roster is None:
        return PreparedFaces(root, faces, found)
    unknown = sorted(set(found) - set(roster))
    if unknown:
        raise DatasetError(
            f"{path} labels {', '.join(unknown)}, who are not in the roster "
            f"({', '.join(roster)}); fix the labels or the roster file"
        )
    without_faces = [member for member in roster if member not in found]
    if without_faces:
        raise DatasetError(
            f"{path} has no face of {', '.join(without_faces)}; a model cannot learn a member "
            "it has never seen"
        )
    return PreparedFaces(root, faces, list(roster))


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
    prepared: PreparedFaces, *, batch_size: int, augment: bool = True, phone_share: float = 0.0
) -> DataLoaders:
    """Build train and valid loaders over the chips of the `train` and `valid` splits.

    Augmentation is what a real photo could show: flips, small rotations and zooms, and
    lighting; no warps, which would bend a face out of the shape the aligner gives it. With
    `phone_share` above 0 that share of training chips is also degraded as phone photos are.
    """
    faces = prepared.faces[prepared.faces["split"].isin([TRAIN, VALID])].copy()
    faces["is_valid"] = faces["split"] == VALID
    if not faces["is_valid"].any() or faces["is_valid"].all():
        raise DatasetError("training needs faces in both the train and the valid split")

    item_transforms: list[RandTransform] = (
        [SimulateTightCrop(), SimulateSmallFace()] if augment else []
    )
    if augment and phone_share > 0:
        item_transforms.append(SimulatePhonePhoto(p=phone_share))
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
        # Lambdas, not annotated functions: fastai dispatches on annotations and cannot take
        # parameterised generics such as list[str].
        get_y=lambda row: labels_of(row),
        splitter=ColSplitter("is_valid"),
        item_tfms=item_transforms,
        batch_tfms=batch_transforms,
    )
    return block.dataloaders(faces, bs=batch_size, num_workers=0, shuffle=True)


class SimulateTightCrop(RandTransform):
    """Turn some training chips into what a tight face crop gives: edges repeated outward.

    Photos that are tight face crops (many stranger sets, some uploads) leave part of the chip
    outside the photo, which the aligner fills by repeating the edge pixels. Showing the same
    streaks on member faces keeps the model from learning "streaks mean nobody known".
    """

    split_idx = 0  # training only
    # Ranges of the kept rectangle in a 150 px chip; tight crops keep about 90 to 120 px.
    _LEFT_PX = (12, 40)
    _RIGHT_PX = (110, 138)
    _TOP_PX = (8, 35)
    _BOTTOM_PX = (112, 145)

    def __init__(self, p: float = 0.3) -> None:
        """Simulate a tight crop on a share `p` of training chips."""
        super().__init__(p=p)

    def before_call(self, b: object, split_idx: int) -> None:
        """Draw the kept rectangle for this item."""
        super().before_call(b, split_idx)
        self.kept = tuple(
            int(np.random.randint(low, high + 1))
            for low, high in (self._LEFT_PX, self._TOP_PX, self._RIGHT_PX, self._BOTTOM_PX)
        )

    def encodes(self, image: PILImage) -> PILImage:
        """Keep the drawn rectangle of the chip and repeat its edges over the rest."""
        pixels = np.asarray(image)
        height, width = pixels.shape[:2]
        left, top, right, bottom = self.kept
        right, bottom = min(right, width), min(bottom, height)
        padded = np.pad(
            pixels[top:bottom, left:right],
            ((top, height - bottom), (left, width - right), (0, 0)),
            mode="edge",
        )
        return PILImage.create(padded)


class SimulateSmallFace(RandTransform):
    """Show some training chips as a small face in a photo gives them: few pixels, upsampled.

    A face 25 px wide in a group photo reaches the 150 px chip through the aligner's bilinear
    upsampling, soft and blocky; most training faces are larger. Shrinking a share of the chips
    to a drawn width and enlarging them back the same way teaches the model those faces too.
    """

    split_idx = 0  # training only
    _SIDE_PX = (20, 60)

    def __init__(self, p: float = 0.25) -> None:
        """Shrink a share `p` of training chips."""
        super().__init__(p=p)

    def before_call(self, b: object, split_idx: int) -> None:
        """Draw the side the chip is shrunk to."""
        super().before_call(b, split_idx)
        self.side = int(np.random.randint(self._SIDE_PX[0], self._SIDE_PX[1] + 1))

    def encodes(self, image: PILImage) -> PILImage:
        """Shrink the chip to the drawn side, then enlarge it back bilinearly."""
        size = image.size
        small = image.resize((self.side, self.side), Image.Resampling.BOX)
        return PILImage.create(np.asarray(small.resize(size, Image.Resampling.BILINEAR)))


class SimulatePhonePhoto(RandTransform):
    """Show some training chips as a photo passed between phones gives them: soft, grainy, coded.

    Faces in such photos are refused as nobody known far more often than web photos' faces
    (`benchmarks/crop_faces.py` on degraded scene crops). Each chip drawn gets a blur, sensor
    noise, or both, and then JPEG compression at a low quality.
    """

    split_idx = 0  # training only
    _BLUR_RADIUS_PX = (0.5, 2.0)
    _NOISE_SIGMA = (3.0, 12.0)
    _JPEG_QUALITY = (15, 60)

    def __init__(self, p: float = 0.25) -> None:
        """Degrade a share `p` of training chips."""
        super().__init__(p=p)

    def before_call(self, b: object, split_idx: int) -> None:
        """Draw this chip's blur radius and noise level (0 for none) and its JPEG quality."""
        super().before_call(b, split_idx)
        has_blur = np.random.rand() < 0.6
        has_noise = not has_blur or np.random.rand() < 0.4
        self.blur_radius = float(np.random.uniform(*self._BLUR_RADIUS_PX)) if has_blur else 0.0
        self.noise_sigma = float(np.random.uniform(*self._NOISE_SIGMA)) if has_noise else 0.0
        self.quality = int(np.random.randint(self._JPEG_QUALITY[0], self._JPEG_QUALITY[1] + 1))
        self.noise_seed = int(np.random.randint(1 << 31))

    def encodes(self, image: PILImage) -> PILImage:
        """Blur the chip, add noise, then code it as JPEG and decode it again."""
        degraded = image.convert("RGB")
        if self.blur_radius > 0:
            degraded = degraded.filter(ImageFilter.GaussianBlur(self.blur_radius))
        if self.noise_sigma > 0:
            pixels = np.asarray(degraded, dtype=np.float32)
            rng = np.random.default_rng(self.noise_seed)
            noisy = pixels + rng.normal(0.0, self.noise_sigma, pixels.shape)
            degraded = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        degraded.save(buffer, format="JPEG", quality=self.quality)
        buffer.seek(0)
        with Image.open(buffer) as coded:
            return PILImage.create(np.asarray(coded.convert("RGB")))


def normalize_transform() -> Normalize:
    """Return fastai's Normalize set to dlib's input normalisation.

    fastai scales pixels to [0, 1] first, so dlib's `(pixel - mean) * scale` on 0-255 pixels
    becomes `(x - mean / 255) / (1 / (255 * scale))`.
    """
    mean = [channel_mean / 255.0 for channel_mean in DLIB_MEAN_RGB]
    std = [1.0 / (255.0 * DLIB_SCALE)] * 3
    return Normalize.from_stats(mean, std, cuda=False)
