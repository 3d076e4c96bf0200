"""Move face labels in and out: Pascal VOC XML folders and a plain CSV, one row per box.

The CSV has the columns `photo,width,height,member,x_min,y_min,x_max,y_max`; `photo` is
relative to a photos root (or absolute), boxes are pixels of the upright photo, and an empty
`member` is a face of nobody in the roster. A VOC folder is `images/` beside `annotations/`,
as the shared BTS photos are, so `memberlens prepare` reads what `labels import` writes.
"""

import csv
import logging
import os
import shutil
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from data_tools.atomic import write_text_atomic
from data_tools.errors import DatasetError, UnknownMemberError
from data_tools.labelled_set import LabelledSet, training_labels
from data_tools.roster import Roster
from data_tools.voc import (
    ANNOTATIONS_FOLDER,
    IMAGES_FOLDER,
    LabelledBox,
    LabelledPhoto,
    read_voc_folder,
)

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("photo", "width", "height", "member", "x_min", "y_min", "x_max", "y_max")
NOT_A_MEMBER = ""


@dataclass
class ResolvedLabels:
    """Labels whose member names were mapped to roster slugs, with what could not be mapped."""

    photos: list[LabelledPhoto]
    unknown_names: Counter[str] = field(default_factory=Counter)


def read_csv_labels(path: Path, photos_root: Path) -> list[LabelledPhoto]:
    """Read a labels CSV into photos with their boxes, in the order photos first appear.

    Raises:
        DatasetError: the file cannot be read, lacks a column, or has a malformed row.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            missing = set(CSV_COLUMNS) - set(reader.fieldnames or [])
            if missing:
                raise DatasetError(
                    f"{path} lacks the columns {sorted(missing)}; expected {','.join(CSV_COLUMNS)}"
                )
            rows = list(reader)
    except OSError as err:
        raise DatasetError(f"cannot read labels CSV {path}: {err}") from err

    by_photo: dict[Path, LabelledPhoto] = {}
    for line_number, row in enumerate(rows, start=2):
        photo_path = _photo_path(photos_root, row["photo"])
        box = _parse_box(row, f"{path}:{line_number}")
        photo = by_photo.get(photo_path)
        if photo is None:
            width, height = _parse_size(row, f"{path}:{line_number}")
            photo = LabelledPhoto(path=photo_path, boxes=[], width=width, height=height)
            by_photo[photo_path] = photo
        photo.boxes.append(LabelledBox(member=row["member"].strip(), box=box))
    return list(by_photo.values())


def write_csv_labels(photos: Iterable[LabelledPhoto], path: Path, photos_root: Path) -> int:
    """Write labels as CSV, with photo paths relative to `photos_root` where they lie under it.

    Returns:
        The number of rows (boxes) written.
    """
    rows = 0
    temporary = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for photo in photos:
            name = _relative_name(photo.path, photos_root)
            for labelled in photo.boxes:
                x_min, y_min, x_max, y_max = (round(value) for value in labelled.box)
                writer.writerow(
                    [name, photo.width, photo.height, labelled.member, x_min, y_min, x_max, y_max]
                )
                rows += 1
    os.replace(temporary, path)
    logger.info("labels csv written", extra={"path": str(path), "rows": rows})
    return rows


def read_voc_labels(folder: Path) -> list[LabelledPhoto]:
    """Read the labelled photos of a VOC folder (`images/` and `annotations/`).

    Raises:
        DatasetError: the folder has no `images/` or no photo in it.
    """
    return read_voc_folder(folder).photos


def write_voc_folder(photos: Iterable[LabelledPhoto], out_dir: Path) -> int:
    """Write a VOC folder: each photo linked (or copied) into `images/`, its XML in `annotations/`.

    Boxes with an empty member (a face of nobody in the roster) have no VOC name and are left
    out. Photo names are kept; two photos with one name get a numeric suffix.

    Returns:
        The number of photos written.

    Raises:
        DatasetError: a photo cannot be read or the folder cannot be written.
    """
    images_dir = out_dir / IMAGES_FOLDER
    annotations_dir = out_dir / ANNOTATIONS_FOLDER
    images_dir.mkdir(parents=True, exist_ok=True)
    annotations_dir.mkdir(parents=True, exist_ok=True)
    used_names: set[str] = set()
    written = 0
    for photo in photos:
        boxes = [labelled for labelled in photo.boxes if labelled.member != NOT_A_MEMBER]
        if not boxes:
            continue
        name = _unique_name(photo.path.name, used_names)
        _link_or_copy(photo.path, images_dir / name)
        width, height = (photo.width, photo.height) if photo.width else _image_size(photo.path)
        xml_text = _voc_xml(name, width, height, boxes)
        write_text_atomic(annotations_dir / f"{Path(name).stem}.xml", xml_text)
        written += 1
    logger.info("voc folder written", extra={"folder": str(out_dir), "photos": written})
    return written


def resolve_members(photos: Iterable[LabelledPhoto], roster: Roster) -> ResolvedLabels:
    """Map every box's member name to a roster slug through slugs, display names and aliases.

    A box whose name is empty stays a face of nobody; a box whose name no member goes by is
    dropped and counted in `unknown_names`.
    """
    resolved = ResolvedLabels(photos=[])
    for photo in photos:
        boxes: list[LabelledBox] = []
        for labelled in photo.boxes:
            if labelled.member == NOT_A_MEMBER:
                boxes.append(labelled)
                continue
            try:
                boxes.append(LabelledBox(member=roster.resolve(labelled.member), box=labelled.box))
            except UnknownMemberError:
                resolved.unknown_names[labelled.member] += 1
        resolved.photos.append(
            LabelledPhoto(path=photo.path, boxes=boxes, width=photo.width, height=photo.height)
        )
    if resolved.unknown_names:
        logger.warning(
            "labels with unknown names dropped",
            extra={"names": dict(resolved.unknown_names)},
        )
    return resolved


def collection_labels(collection: Path) -> list[LabelledPhoto]:
    """Return the labels of a collection labelled by `memberlens label`, decisions applied.

    Only faces that train are listed: a member's face with its slug, a face reviewed as not a
    member with an empty member. Photos without such a face are left out.

    Raises:
        DatasetError: the collection has not been labelled.
    """
    labelled = LabelledSet.load(collection)
    boxes_by_photo: dict[str, list[LabelledBox]] = {}
    for face in labelled.faces:
        labels = training_labels(face)
        if labels is None:
            continue
        x_min, y_min, x_max, y_max = face["box"]
        boxes_by_photo.setdefault(face["photo"], []).append(
            LabelledBox(member=labels, box=(x_min, y_min, x_max, y_max))
        )
    photos = []
    for photo, boxes in boxes_by_photo.items():
        path = collection / photo
        width, height = _image_size(path)
        photos.append(LabelledPhoto(path=path, boxes=boxes, width=width, height=height))
    return photos


def _photo_path(photos_root: Path, name: str) -> Path:
    candidate = Path(name.strip())
    return candidate if candidate.is_absolute() else photos_root / candidate


def _relative_name(path: Path, photos_root: Path) -> str:
    try:
        return path.resolve().relative_to(photos_root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _parse_box(row: dict[str, str], where: str) -> tuple[float, float, float, float]:
    try:
        x_min, y_min, x_max, y_max = (float(row[key]) for key in CSV_COLUMNS[4:])
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{where}: box coordinates must be numbers") from err
    if x_max <= x_min or y_max <= y_min:
        raise DatasetError(f"{where}: box must have x_max > x_min and y_max > y_min")
    return x_min, y_min, x_max, y_max


def _parse_size(row: dict[str, str], where: str) -> tuple[int, int]:
    try:
        return int(float(row["width"] or 0)), int(float(row["height"] or 0))
    except ValueError as err:
        raise DatasetError(f"{where}: width and height must be numbers or empty") from err


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"cannot read the size of photo {path}: {err}") from err


def _unique_name(name: str, used: set[str]) -> str:
    candidate = name
    suffix = 1
    while candidate.casefold() in used:
        candidate = f"{Path(name).stem}-{suffix}{Path(name).suffix}"
        suffix += 1
    used.add(candidate.casefold())
    return candidate


def _link_or_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise DatasetError(f"photo {source} not found; check the photos folder")
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _voc_xml(filename: str, width: int, height: int, boxes: list[LabelledBox]) -> str:
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = IMAGES_FOLDER
    ElementTree.SubElement(root, "filename").text = filename
    size = ElementTree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size, tag).text = str(value)
    ElementTree.SubElement(root, "segmented").text = "0"
    for labelled in boxes:
        element = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(element, "name").text = labelled.member
        ElementTree.SubElement(element, "pose").text = "Unspecified"
        ElementTree.SubElement(element, "truncated").text = "0"
        ElementTree.SubElement(element, "difficult").text = "0"
        box_element = ElementTree.SubElement(element, "bndbox")
        for tag, coordinate in zip(("xmin", "ymin", "xmax", "ymax"), labelled.box, strict=True):
            ElementTree.SubElement(box_element, tag).text = str(round(coordinate))
    ElementTree.indent(root, space="\t")
    return ElementTree.tostring(root, encoding="unicode") + "\n"
