"""Read a folder of labelled photos: `images/` beside `annotations/` in Pascal VOC XML.

Names are compared after Unicode NFC normalisation, since file systems and labelling tools
disagree on it (macOS writes NFD names). Whatever does not pair up is reported, never fatal.
"""

import logging
import unicodedata
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from data_tools.errors import DatasetError

logger = logging.getLogger(__name__)

IMAGES_FOLDER = "images"
ANNOTATIONS_FOLDER = "annotations"
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class LabelledBox:
    """One hand-labelled face: a member slug and a (x_min, y_min, x_max, y_max) box in pixels."""

    member: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class LabelledPhoto:
    """A photo with its labelled boxes; width and height are those the labels were drawn on."""

    path: Path
    boxes: list[LabelledBox]
    width: int
    height: int


@dataclass(frozen=True)
class UnreadableAnnotation:
    """An annotation file that was skipped, and why."""

    path: Path
    reason: str


@dataclass
class VocFolder:
    """What a VOC folder holds, with everything that did not pair up.

    Attributes:
        photos: labelled photos, sorted by path.
        photos_without_labels: photo files that no annotation names.
        labels_without_photos: annotation files whose photo is not in `images/`.
        unreadable_annotations: annotation files that are not valid VOC XML.
        skipped_boxes: count of `<object>` entries dropped (no name, bad or empty box).
    """

    photos: list[LabelledPhoto] = field(default_factory=list)
    photos_without_labels: list[Path] = field(default_factory=list)
    labels_without_photos: list[Path] = field(default_factory=list)
    unreadable_annotations: list[UnreadableAnnotation] = field(default_factory=list)
    skipped_boxes: int = 0


def normalise_name(name: str) -> str:
    """Return a file name in Unicode NFC, the form names are compared in."""
    return unicodedata.normalize("NFC", name)


def list_photo_files(folder: Path) -> list[Path]:
    """Return the photo files directly in `folder`, by suffix, sorted; hidden files are skipped."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in PHOTO_SUFFIXES
    )


def read_voc_folder(folder: Path) -> VocFolder:
    """Pair the photos of `folder/images` with the VOC annotations of `folder/annotations`.

    An annotation is paired through its `<filename>`, or else through its own file stem
    (the photo with the same stem), both compared in NFC.

    Raises:
        DatasetError: `folder/images` is missing or holds no photo.
    """
    photo_files = _photo_files(folder)
    annotation_files = _annotation_files(folder)
    by_name = {normalise_name(path.name): path for path in photo_files}
    by_stem = {normalise_name(path.stem): path for path in photo_files}

    result = VocFolder()
    labelled: dict[Path, LabelledPhoto] = {}
    for annotation_path in annotation_files:
        photo = _read_annotation(annotation_path, by_name, by_stem, result)
        if photo is None:
            continue
        if photo.path in labelled:
            logger.warning(
                "photo named by two annotations, keeping the first",
                extra={"photo": photo.path.name, "annotation": annotation_path.name},
            )
            continue
        labelled[photo.path] = photo

    result.photos = sorted(labelled.values(), key=lambda photo: photo.path)
    result.photos_without_labels = [path for path in photo_files if path not in labelled]
    _log_report(result, len(photo_files))
    return result


def _photo_files(folder: Path) -> list[Path]:
    images_folder = folder / IMAGES_FOLDER
    if not images_folder.is_dir():
        raise DatasetError(
            f"Expected a folder of photos at {images_folder} (with VOC labels in "
            f"{folder / ANNOTATIONS_FOLDER}), but it does not exist; check --photos."
        )
    photo_files = list_photo_files(images_folder)
    if not photo_files:
        raise DatasetError(
            f"Expected photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in {images_folder}, "
            "but found none; check --photos."
        )
    return photo_files


def _annotation_files(folder: Path) -> list[Path]:
    annotations_folder = folder / ANNOTATIONS_FOLDER
    if not annotations_folder.is_dir():
        logger.warning("annotations folder missing", extra={"folder": str(annotations_folder)})
        return []
    return sorted(
        path
        for path in annotations_folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() == ".xml"
    )


def _read_annotation(
    annotation_path: Path,
    by_name: dict[str, Path],
    by_stem: dict[str, Path],
    result: VocFolder,
) -> LabelledPhoto | None:
    try:
        root = ElementTree.parse(annotation_path).getroot()
    except (ElementTree.ParseError, OSError, UnicodeDecodeError) as err:
        logger.warning("annotation unreadable, skipped", extra={"annotation": annotation_path.name})
        result.unreadable_annotations.append(UnreadableAnnotation(annotation_path, str(err)))
        return None

    photo_path = _find_photo(root, annotation_path, by_name, by_stem)
    if photo_path is None:
        result.labels_without_photos.append(annotation_path)
        return None
    boxes, skipped = _read_boxes(root, annotation_path)
    result.skipped_boxes += skipped
    width = _read_int(root, "size/width")
    height = _read_int(root, "size/height")
    if width is None or height is None:
        width, height = _header_size(photo_path)
    return LabelledPhoto(path=photo_path, boxes=boxes, width=width, height=height)


def _find_photo(
    root: ElementTree.Element,
    annotation_path: Path,
    by_name: dict[str, Path],
    by_stem: dict[str, Path],
) -> Path | None:
    filename = (root.findtext("filename") or "").strip()
    # Some tools write the full path into <filename>; only its last part names the photo.
    filename = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if filename and normalise_name(filename) in by_name:
        return by_name[normalise_name(filename)]
    return by_stem.get(normalise_name(annotation_path.stem))


def _read_boxes(root: ElementTree.Element, annotation_path: Path) -> tuple[list[LabelledBox], int]:
    boxes: list[LabelledBox] = []
    skipped = 0
    for element in root.iter("object"):
        member = normalise_name((element.findtext("name") or "").strip().lower())
        values = [_read_float(element, f"bndbox/{name}") for name in _BOX_FIELDS]
        if not member or any(value is None for value in values):
            skipped += 1
            continue
        x_min, y_min, x_max, y_max = (float(value) for value in values if value is not None)
        if x_max <= x_min or y_max <= y_min:
            skipped += 1
            continue
        boxes.append(LabelledBox(member=member, box=(x_min, y_min, x_max, y_max)))
    if skipped:
        logger.warning(
            "labelled boxes skipped", extra={"annotation": annotation_path.name, "count": skipped}
        )
    return boxes, skipped


def _read_float(element: ElementTree.Element, path: str) -> float | None:
    text = element.findtext(path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _read_int(element: ElementTree.Element, path: str) -> int | None:
    value = _read_float(element, path)
    return int(value) if value is not None and value > 0 else None


def _header_size(photo_path: Path) -> tuple[int, int]:
    """Read the upright size from the photo's header, for annotations that lack `<size>`."""
    try:
        with Image.open(photo_path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return 0, 0
    # EXIF orientations 5 to 8 turn the photo by 90 degrees.
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _log_report(result: VocFolder, photo_count: int) -> None:
    logger.info(
        "voc folder read",
        extra={
            "photos": photo_count,
            "labelled_photos": len(result.photos),
            "photos_without_labels": len(result.photos_without_labels),
            "labels_without_photos": len(result.labels_without_photos),
            "unreadable_annotations": len(result.unreadable_annotations),
        },
    )
    if result.photos_without_labels:
        logger.warning(
            "photos without labels",
            extra={"photos": [path.name for path in result.photos_without_labels]},
        )
    if result.labels_without_photos:
        logger.warning(
            "labels without photos",
            extra={"annotations": [path.name for path in result.labels_without_photos]},
        )
