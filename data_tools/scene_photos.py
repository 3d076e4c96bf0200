"""Make whole-photo training and validation sets for the scene model from a prepared folder.

Real group photos mostly show all seven members, so a model trained on them alone learns to
answer "all seven". From each labelled photo this module cuts crops that hold some labelled
heads whole and cut none, pastes crops of several photos into collages, adds stranger photos
with the empty label, and degrades a share of everything the way phone photos are degraded.
Every choice comes from a generator seeded by the seed, the split and the item's position.
"""

import io
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from PIL import Image, ImageFilter, ImageOps

from data_tools.atomic import write_text_atomic
from data_tools.crops import LabelledBox, choose_crop, clip_box, heads_inside
from data_tools.errors import DatasetError

logger = logging.getLogger(__name__)

SCENE_FILE = "scene.csv"
IMAGES_FOLDER = "images"
SCENE_COLUMNS = ("image", "split", "kind", "labels", "boxes", "degraded", "source")
WHOLE, CROP, COLLAGE, STRANGER = "whole", "crop", "collage", "stranger"

_COLLAGE_CELL_PX = 320
_MIN_DEGRADED_SIDE_PX = 256


@dataclass(frozen=True)
class ScenePhotoOptions:
    """How many of each kind of photo to make per split, and how.

    Attributes:
        crops_per_photo: crops cut from each group photo; their sizes cycle 1..max_crop_members.
        max_crop_members: the largest number of labelled heads a crop is asked to hold.
        collages: collages per split, each of 2 to 4 crops of other photos.
        max_strangers: stranger photos taken per split (all when fewer).
        degraded_share: share of crops, collages and strangers degraded like phone photos.
        degraded_whole_copies: degraded copies of each whole group photo, beside the clean one.
        max_side_px: longer side of written photos, per split; larger ones are shrunk.
        splits: the splits to make (`train`, `valid`); each has its own generator, so making
            one alone gives the same photos as making both.
    """

    seed: int = 0
    crops_per_photo: dict[str, int] = field(default_factory=lambda: {"train": 8, "valid": 4})
    max_crop_members: int = 4
    collages: dict[str, int] = field(default_factory=lambda: {"train": 250, "valid": 20})
    max_strangers: dict[str, int] = field(default_factory=lambda: {"train": 300, "valid": 100})
    degraded_share: float = 0.35
    degraded_whole_copies: int = 1
    max_side_px: dict[str, int] = field(default_factory=lambda: {"train": 448, "valid": 1024})
    splits: tuple[str, ...] = ("train", "valid")


@dataclass
class ScenePhoto:
    """One made photo: its pixels, its labelled boxes in its own pixels, and how it was made."""

    pixels: NDArray[np.uint8]
    boxes: list[LabelledBox]
    kind: str
    source: str
    degraded: list[str] = field(default_factory=list)

    @property
    def members(self) -> list[str]:
        """Return the members whose heads the photo holds, sorted, each once."""
        return sorted({labelled.member for labelled in self.boxes})


def make_scene_photos(
    prepared_dir: Path, out_dir: Path, options: ScenePhotoOptions
) -> pd.DataFrame:
    """Write the scene photos of the train and valid splits and their `scene.csv`.

    The folder is written beside `out_dir` under a temporary name and then renamed, so a reader
    never sees half a set.

    Returns:
        The rows of `scene.csv`: image (relative path), split, kind, labels (space-separated
        slugs), boxes (JSON), degraded (the steps applied, joined by `+`), source photos.

    Raises:
        DatasetError: the prepared folder lacks its photos or faces file.
    """
    group_photos = read_group_photos(prepared_dir)
    stranger_photos = read_stranger_photos(prepared_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        rows: list[dict[str, str]] = []
        for split_number, split in enumerate(("train", "valid")):
            if split not in options.splits:
                continue
            rng = np.random.default_rng([options.seed, split_number])
            photos = [photo for photo in group_photos if photo[1] == split]
            strangers = [
                path for path, stranger_split in stranger_photos if stranger_split == split
            ]
            made = _split_photos(photos, strangers, split, options, rng)
            rows += _write_split(staging, split, made, options.max_side_px.get(split, 1024))
            logger.info("scene photos made", extra={"split": split, "photos": len(made)})
        table = pd.DataFrame(rows, columns=list(SCENE_COLUMNS))
        write_text_atomic(staging / SCENE_FILE, table.to_csv(index=False))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return table


def read_group_photos(prepared_dir: Path) -> list[tuple[Path, str, list[LabelledBox]]]:
    """Return each group photo of `photos.csv` with its split and labelled head boxes.

    Raises:
        DatasetError: the file is missing.
    """
    path = prepared_dir / "photos.csv"
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens prepare --out {prepared_dir}`")
    table = pd.read_csv(path, keep_default_na=False)
    photos = []
    for _, row in table.sort_values("photo").iterrows():
        boxes = [
            LabelledBox(box["member"], (box["x_min"], box["y_min"], box["x_max"], box["y_max"]))
            for box in json.loads(row["boxes"])
        ]
        photos.append((Path(row["photo"]), str(row["split"]), boxes))
    return photos


def read_stranger_photos(prepared_dir: Path) -> list[tuple[Path, str]]:
    """Return each stranger photo of `faces.csv` once, with its split (people split apart).

    Raises:
        DatasetError: the file is missing.
    """
    path = prepared_dir / "faces.csv"
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens prepare --out {prepared_dir}`")
    faces = pd.read_csv(path, keep_default_na=False)
    strangers = faces[faces["source"] == "stranger"].drop_duplicates("photo").sort_values("photo")
    return [
        (Path(photo), str(split))
        for photo, split in zip(strangers["photo"], strangers["split"], strict=True)
    ]


def degrade(photo: ScenePhoto, rng: np.random.Generator) -> ScenePhoto:
    """Return a copy of `photo` degraded as a phone photo sent on is.

    Steps, each drawn at random: shrinking (boxes follow), bad light (too dark or too bright,
    low contrast, a colour cast), blur, sensor noise; JPEG compression always comes last.
    """
    image = Image.fromarray(photo.pixels)
    boxes = list(photo.boxes)
    steps: list[str] = []
    # Phones send photos shrunk, but not to thumbnails: a photo already small is shrunk less,
    # never under `_MIN_DEGRADED_SIDE_PX` on its longer side (and never enlarged).
    longer_side = max(image.width, image.height)
    scale = min(1.0, max(float(rng.uniform(0.3, 0.7)), _MIN_DEGRADED_SIDE_PX / longer_side))
    if rng.random() < 0.7 and scale < 1.0:
        new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        scale_x, scale_y = new_size[0] / image.width, new_size[1] / image.height
        image = image.resize(new_size, Image.Resampling.BILINEAR)
        boxes = [_scaled(labelled, scale_x, scale_y) for labelled in boxes]
        steps.append("small")
    pixels = np.asarray(image, dtype=np.float32)
    if rng.random() < 0.6:
        pixels = _bad_light(pixels, rng)
        steps.append("light")
    if rng.random() < 0.5:
        radius = float(rng.uniform(0.7, 2.2))
        blurred = Image.fromarray(_to_uint8(pixels)).filter(ImageFilter.GaussianBlur(radius))
        pixels = np.asarray(blurred, dtype=np.float32)
        steps.append("blur")
    if rng.random() < 0.5:
        noise = rng.normal(0.0, float(rng.uniform(3.0, 14.0)), pixels.shape)
        pixels = np.asarray(pixels + noise, dtype=np.float32)
        steps.append("noise")
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(pixels)).save(
        buffer, format="JPEG", quality=int(rng.integers(12, 50))
    )
    buffer.seek(0)
    with Image.open(buffer) as compressed:
        degraded = np.asarray(compressed.convert("RGB"), dtype=np.uint8)
    steps.append("jpeg")
    return ScenePhoto(degraded, boxes, photo.kind, photo.source, [*photo.degraded, *steps])


def make_collage(parts: Sequence[ScenePhoto], rng: np.random.Generator) -> ScenePhoto:
    """Paste 2 to 4 photos into the cells of a grid, each shrunk to fit; boxes follow them."""
    columns = 2 if len(parts) > 1 else 1
    rows = (len(parts) + columns - 1) // columns
    cell = _COLLAGE_CELL_PX
    background = tuple(int(value) for value in rng.integers(0, 256, 3))
    canvas = Image.new("RGB", (columns * cell, rows * cell), background)
    boxes: list[LabelledBox] = []
    for index, part in enumerate(parts):
        image = Image.fromarray(part.pixels)
        scale = min(cell / image.width, cell / image.height)
        fitted = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
        )
        left = (index % columns) * cell + (cell - fitted.width) // 2
        top = (index // columns) * cell + (cell - fitted.height) // 2
        canvas.paste(fitted, (left, top))
        boxes += [_moved(_scaled(labelled, scale, scale), left, top) for labelled in part.boxes]
    source = " | ".join(part.source for part in parts)
    return ScenePhoto(np.asarray(canvas, dtype=np.uint8), boxes, COLLAGE, source)


def _split_photos(
    photos: list[tuple[Path, str, list[LabelledBox]]],
    strangers: list[Path],
    split: str,
    options: ScenePhotoOptions,
    rng: np.random.Generator,
) -> list[ScenePhoto]:
    made: list[ScenePhoto] = []
    crops: list[ScenePhoto] = []
    for path, _, boxes in photos:
        pixels = _load(path)
        height, width = pixels.shape[:2]
        # Hand-drawn boxes may reach past the photo's edge; only the part inside can be held.
        inside = [LabelledBox(b.member, clip_box(b.box, width, height)) for b in boxes]
        whole = ScenePhoto(pixels, inside, WHOLE, str(path))
        made.append(whole)
        made += [degrade(whole, rng) for _ in range(options.degraded_whole_copies)]
        for number in range(options.crops_per_photo.get(split, 0)):
            crop = _crop_photo(whole, number % options.max_crop_members + 1, rng)
            if crop is not None:
                crops.append(crop)
    chosen_strangers = _pick(strangers, options.max_strangers.get(split, 0), rng)
    stranger_photos = [
        ScenePhoto(_load(path), [], STRANGER, str(path)) for path in chosen_strangers
    ]
    collages = [
        _collage(crops, stranger_photos, rng) for _ in range(options.collages.get(split, 0))
    ]
    for photo in [*crops, *stranger_photos, *[c for c in collages if c is not None]]:
        made.append(degrade(photo, rng) if rng.random() < options.degraded_share else photo)
    return made


def _crop_photo(whole: ScenePhoto, n_members: int, rng: np.random.Generator) -> ScenePhoto | None:
    height, width = whole.pixels.shape[:2]
    crop = choose_crop(whole.boxes, (width, height), n_members, rng)
    if crop is None:
        return None
    x_min, y_min, x_max, y_max = (int(value) for value in crop)
    pixels = np.ascontiguousarray(whole.pixels[y_min:y_max, x_min:x_max])
    return ScenePhoto(pixels, heads_inside(whole.boxes, crop), CROP, whole.source)


def _collage(
    crops: list[ScenePhoto], strangers: list[ScenePhoto], rng: np.random.Generator
) -> ScenePhoto | None:
    n_parts = int(rng.integers(2, 5))
    pool = [*crops, *strangers]
    if len(pool) < n_parts:
        return None
    # Mostly crops of members; a stranger in a cell teaches that a face alone names nobody.
    parts = [
        strangers[int(rng.integers(len(strangers)))]
        if strangers and rng.random() < 0.25
        else crops[int(rng.integers(len(crops)))]
        for _ in range(n_parts)
        if crops
    ]
    return make_collage(parts, rng) if parts else None


def _write_split(
    folder: Path, split: str, made: list[ScenePhoto], max_side_px: int
) -> list[dict[str, str]]:
    (folder / IMAGES_FOLDER / split).mkdir(parents=True, exist_ok=True)
    rows = []
    for number, photo in enumerate(made):
        photo = _shrunk(photo, max_side_px)
        # Degraded photos keep their JPEG artefacts exactly: written losslessly.
        suffix = "png" if photo.degraded else "jpg"
        relative = f"{IMAGES_FOLDER}/{split}/{number:05d}-{photo.kind}.{suffix}"
        image = Image.fromarray(photo.pixels)
        if photo.degraded:
            image.save(folder / relative, format="PNG")
        else:
            image.save(folder / relative, format="JPEG", quality=92)
        rows.append(
            {
                "image": relative,
                "split": split,
                "kind": photo.kind,
                "labels": " ".join(photo.members),
                "boxes": json.dumps(
                    [
                        {
                            "member": labelled.member,
                            "x_min": round(labelled.box[0], 1),
                            "y_min": round(labelled.box[1], 1),
                            "x_max": round(labelled.box[2], 1),
                            "y_max": round(labelled.box[3], 1),
                        }
                        for labelled in photo.boxes
                    ]
                ),
                "degraded": "+".join(photo.degraded),
                "source": photo.source,
            }
        )
    return rows


def _bad_light(pixels: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    gamma = float(rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.4, 2.4)]))
    contrast = float(rng.uniform(0.6, 1.1))
    cast = rng.uniform(0.85, 1.15, 3)
    lit = 255.0 * (pixels / 255.0) ** gamma
    lit = (lit - 128.0) * contrast + 128.0
    return np.asarray(lit * cast, dtype=np.float32)


def _shrunk(photo: ScenePhoto, max_side_px: int) -> ScenePhoto:
    height, width = photo.pixels.shape[:2]
    scale = max_side_px / max(width, height)
    if scale >= 1.0:
        return photo
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(photo.pixels).resize(size, Image.Resampling.BILINEAR)
    boxes = [_scaled(labelled, size[0] / width, size[1] / height) for labelled in photo.boxes]
    return ScenePhoto(np.asarray(image), boxes, photo.kind, photo.source, photo.degraded)


def _load(path: Path) -> NDArray[np.uint8]:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)


def _pick(paths: list[Path], limit: int, rng: np.random.Generator) -> list[Path]:
    if len(paths) <= limit:
        return list(paths)
    return [paths[i] for i in sorted(rng.choice(len(paths), size=limit, replace=False))]


def _to_uint8(pixels: NDArray[np.floating]) -> NDArray[np.uint8]:
    return np.asarray(np.clip(np.round(pixels), 0, 255), dtype=np.uint8)


def _scaled(labelled: LabelledBox, scale_x: float, scale_y: float) -> LabelledBox:
    x_min, y_min, x_max, y_max = labelled.box
    return LabelledBox(
        labelled.member, (x_min * scale_x, y_min * scale_y, x_max * scale_x, y_max * scale_y)
    )


def _moved(labelled: LabelledBox, left: float, top: float) -> LabelledBox:
    x_min, y_min, x_max, y_max = labelled.box
    return LabelledBox(labelled.member, (x_min + left, y_min + top, x_max + left, y_max + top))
