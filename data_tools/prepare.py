"""Turn labelled group photos and stranger photos into aligned face chips and their tables.

`prepare_dataset` writes, into the output folder: `chips/<id>.png`, `faces.csv` (one row per
chip), `photos.csv` (one row per group photo) and `report.json` (counts and timings). Every
file is written under a temporary name and renamed, so no reader sees half a file. The module
runs past 400 lines because group photos, strangers and the written tables share one `_Run`;
stranger handling is the natural piece to move out if it grows.
"""

import csv
import hashlib
import io
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from data_tools.align import align_faces, chip_outside_share
from data_tools.atomic import write_text_atomic, write_with_atomic
from data_tools.duplicates import group_duplicates, split_groups
from data_tools.errors import DatasetError, InvalidParameterError, MemberlensError
from data_tools.faces import DEFAULT_MAX_SIDE_PX, DEFAULT_MIN_FACE_SIZE_PX, Face, FaceDetector
from data_tools.matching import match_faces
from data_tools.photos import load_photo
from data_tools.voc import (
    LabelledPhoto,
    VocFolder,
    list_photo_files,
    normalise_name,
    read_voc_folder,
)

logger = logging.getLogger(__name__)

CHIPS_FOLDER = "chips"
FACES_FILE = "faces.csv"
PHOTOS_FILE = "photos.csv"
REPORT_FILE = "report.json"
FACE_COLUMNS = (
    "chip", "photo", "source", "split", "labels", "x_min", "y_min", "x_max", "y_max",
    "detection_score", "landmarks", "group_key", "outside_share",
)  # fmt: skip
PHOTO_COLUMNS = ("photo", "split", "group_key", "width", "height", "boxes")
GROUP_SOURCE = "group"
STRANGER_SOURCE = "stranger"
# Labels drawn on a photo of another size are rescaled when the aspect ratio agrees this well.
_ASPECT_TOLERANCE = 0.02
# A source whose chips lie this much outside their photos on average is warned about.
_OUTSIDE_SHARE_WARNING = 0.1


@dataclass(frozen=True)
class PrepareOptions:
    """What `prepare_dataset` reads, writes and how."""

    photos_folder: Path
    out_folder: Path
    strangers_folder: Path | None = None
    seed: int = 0
    valid_share: float = 0.2
    limit_photos: int | None = None
    max_stranger_photos_per_person: int = 100
    min_face_size_px: int = DEFAULT_MIN_FACE_SIZE_PX
    max_side_px: int | None = DEFAULT_MAX_SIDE_PX
    max_photo_bytes: int = 50 * 1024 * 1024
    max_photo_pixels: int = 50_000_000
    progress_every: int = 25


@dataclass
class GroupPhotoCounts:
    """What happened to the group photos and their labelled faces."""

    photo_files: int = 0
    labelled_photos: int = 0
    processed_photos: int = 0
    photos_without_labels: list[str] = field(default_factory=list)
    labels_without_photos: list[str] = field(default_factory=list)
    unreadable_annotations: list[str] = field(default_factory=list)
    unreadable_photos: list[str] = field(default_factory=list)
    label_size_mismatches: list[str] = field(default_factory=list)
    duplicate_groups: int = 0
    duplicate_group_sizes: list[int] = field(default_factory=list)
    photos_per_split: dict[str, int] = field(default_factory=dict)
    labelled_boxes: int = 0
    matched: int = 0
    missed: int = 0
    unmatched_detections: int = 0
    match_rate: float = 0.0


@dataclass
class StrangerSourceCounts:
    """What happened to the photos of one source of strangers."""

    people_per_split: dict[str, list[str]] = field(default_factory=dict)
    photos_found: int = 0
    photos_used: int = 0
    photos_without_face: int = 0
    unreadable_photos: list[str] = field(default_factory=list)


@dataclass
class PrepareReport:
    """Everything `report.json` holds."""

    group_photos: GroupPhotoCounts = field(default_factory=GroupPhotoCounts)
    strangers: dict[str, StrangerSourceCounts] = field(default_factory=dict)
    faces_per_split: dict[str, dict[str, int]] = field(default_factory=dict)
    mean_chip_outside_share: dict[str, float] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def prepare_dataset(options: PrepareOptions, detector: FaceDetector | None = None) -> PrepareReport:
    """Detect, match, align and split every face, and write the prepared folder.

    Args:
        options: folders and settings.
        detector: the face detector; an `MtcnnDetector` from the options when not given.

    Returns:
        The report, also written to `report.json`.

    Raises:
        DatasetError: the photos folder is missing or holds no photo, or a strangers folder
            was given but is missing.
        InvalidParameterError: an option outside its range.
    """
    started = time.perf_counter()
    _check_options(options)
    report = PrepareReport(options={key: str(value) for key, value in asdict(options).items()})
    timings = report.timings_s

    with _timed(timings, "read_labels"):
        voc = read_voc_folder(options.photos_folder)
    labelled = voc.photos[: options.limit_photos]
    with _timed(timings, "group_duplicates"):
        group_keys = group_duplicates([photo.path for photo in labelled])
    with _timed(timings, "load_detector"):
        face_detector = detector if detector is not None else _build_detector(options)
    run = _Run(options, face_detector, _ChipWriter(options.out_folder), report)

    with _timed(timings, "group_photos"):
        run.add_group_photos(voc, labelled, group_keys)
    if options.strangers_folder is not None:
        with _timed(timings, "strangers"):
            run.add_strangers(options.strangers_folder)

    report.faces_per_split = _count_faces(run.face_rows)
    report.mean_chip_outside_share = _mean_outside_share(run.face_rows)
    timings["total"] = round(time.perf_counter() - started, 2)
    _write_outputs(options.out_folder, run.face_rows, run.photo_rows, report)
    logger.info(
        "prepared folder written", extra={"faces": len(run.face_rows), "timings_s": timings}
    )
    return report


def _check_options(options: PrepareOptions) -> None:
    if not 0.0 <= options.valid_share < 1.0:
        raise InvalidParameterError(
            f"Expected --valid-share in [0, 1), but got {options.valid_share}; use about 0.2."
        )
    if options.limit_photos is not None and options.limit_photos < 1:
        raise InvalidParameterError(
            f"Expected --limit-photos of at least 1, but got {options.limit_photos}; "
            "leave it out to use every photo."
        )
    if options.max_stranger_photos_per_person < 1:
        raise InvalidParameterError(
            "Expected --max-stranger-photos-per-person of at least 1, but got "
            f"{options.max_stranger_photos_per_person}; leave --strangers out to use none."
        )
    if options.strangers_folder is not None and not options.strangers_folder.is_dir():
        raise DatasetError(
            f"Expected a folder of stranger sources at {options.strangers_folder}, but it does "
            "not exist; check --strangers."
        )


def _build_detector(options: PrepareOptions) -> FaceDetector:
    # Imported here: torch takes seconds to load and the command line must start fast.
    from data_tools.faces import MtcnnDetector

    return MtcnnDetector(min_face_size_px=options.min_face_size_px, max_side_px=options.max_side_px)


class _Run:
    """One preparation: the detector, the chip writer, the rows so far and the report."""

    def __init__(
        self,
        options: PrepareOptions,
        detector: FaceDetector,
        chips: "_ChipWriter",
        report: PrepareReport,
    ) -> None:
        self.options = options
        self.detector = detector
        self.chips = chips
        self.report = report
        self.face_rows: list[dict[str, str]] = []
        self.photo_rows: list[dict[str, str]] = []

    def add_group_photos(
        self, voc: VocFolder, labelled: list[LabelledPhoto], group_keys: dict[Path, str]
    ) -> None:
        """Add the matched faces of every labelled group photo, split by duplicate group."""
        counts = self.report.group_photos
        _record_folder(counts, voc, len(labelled), group_keys)
        splits = split_groups(group_keys.values(), self.options.valid_share, self.options.seed)
        for number, photo in enumerate(labelled, start=1):
            group_key = group_keys[photo.path]
            self._add_group_photo(photo, splits[group_key], group_key)
            _log_progress("group photos prepared", number, len(labelled), self.options)
        _finish_group_counts(counts, self.photo_rows)

    def add_strangers(self, strangers_folder: Path) -> None:
        """Add one face per stranger photo, split by person within each source."""
        for source in sorted(path for path in strangers_folder.iterdir() if path.is_dir()):
            people = sorted(path for path in source.iterdir() if path.is_dir())
            splits = split_people(
                [person.name for person in people], self.options.seed, source.name
            )
            counts = StrangerSourceCounts()
            self.report.strangers[source.name] = counts
            for split in ("train", "valid", "test"):
                counts.people_per_split[split] = [
                    name for name, side in splits.items() if side == split
                ]
            photo_files = {person: list_photo_files(person) for person in people}
            counts.photos_found = sum(len(files) for files in photo_files.values())
            limit = self.options.max_stranger_photos_per_person
            picked = [
                (person, photo_path)
                for person, files in photo_files.items()
                for photo_path in pick_photos(files, limit, self.options.seed)
            ]
            for number, (person, photo_path) in enumerate(picked, start=1):
                group_key = f"{source.name}/{person.name}"
                self._add_stranger_photo(photo_path, splits[person.name], group_key, counts)
                _log_progress("stranger photos prepared", number, len(picked), self.options)

    def _add_group_photo(self, labelled: LabelledPhoto, split: str, group_key: str) -> None:
        counts = self.report.group_photos
        photo = self._load_or_none(labelled.path, counts.unreadable_photos)
        if photo is None:
            return
        boxes = _boxes_in_photo(labelled, photo.shape[1], photo.shape[0])
        if boxes is None:
            counts.label_size_mismatches.append(labelled.path.name)
            logger.warning(
                "labels drawn on another photo size", extra={"photo": labelled.path.name}
            )
            return

        faces = self.detector.detect(photo)
        matching = match_faces(boxes, [face.box for face in faces])
        matched_faces = [faces[match.detection_index] for match in matching.matches]
        chips = align_faces(photo, matched_faces)

        for match, face, chip in zip(matching.matches, matched_faces, chips, strict=True):
            chip_path = self.chips.write(_chip_id(labelled.path, match.labelled_index), chip)
            member = labelled.boxes[match.labelled_index].member
            self.face_rows.append(
                _face_row(
                    chip_path,
                    labelled.path,
                    GROUP_SOURCE,
                    split,
                    member,
                    face,
                    group_key,
                    photo.shape,
                )
            )
        counts.labelled_boxes += len(boxes)
        counts.matched += len(matching.matches)
        counts.missed += len(matching.missed_labelled)
        counts.unmatched_detections += len(matching.unmatched_detections)
        self.photo_rows.append(
            _photo_row(labelled, boxes, split, group_key, photo.shape[1], photo.shape[0])
        )

    def _add_stranger_photo(
        self, photo_path: Path, split: str, group_key: str, counts: StrangerSourceCounts
    ) -> None:
        photo = self._load_or_none(photo_path, counts.unreadable_photos)
        if photo is None:
            return
        faces = self.detector.detect(photo)
        if not faces:
            counts.photos_without_face += 1
            return
        # Every face in a stranger's photo is nobody known, the small ones in the background
        # included: those are the faces a model is most tempted to name, so they must be
        # in training and in the faces that thresholds are tuned on.
        chips = align_faces(photo, faces)
        for face_index, (face, chip) in enumerate(zip(faces, chips, strict=True)):
            chip_path = self.chips.write(_chip_id(photo_path, face_index), chip)
            self.face_rows.append(
                _face_row(
                    chip_path, photo_path, STRANGER_SOURCE, split, "", face, group_key, photo.shape
                )
            )
        counts.photos_used += 1

    def _load_or_none(self, path: Path, unreadable: list[str]) -> NDArray[np.uint8] | None:
        try:
            return load_photo(
                path,
                max_bytes=self.options.max_photo_bytes,
                max_pixels=self.options.max_photo_pixels,
            )
        except MemberlensError as err:
            logger.warning(
                "photo unreadable, skipped", extra={"photo": path.name, "error": str(err)}
            )
            unreadable.append(f"{path}: {err}")
            return None


def split_people(people: Sequence[str], seed: int, source: str) -> dict[str, str]:
    """Assign the people of one source to train (about half), valid and test (a quarter each).

    With three people or more each split gets at least one; with fewer, train comes first,
    then valid. The assignment depends only on the names, the seed and the source.
    """
    ordered = sorted(people)
    random.Random(f"{seed}/{source}").shuffle(ordered)
    if len(ordered) < 3:
        logger.warning(
            "too few strangers for three splits", extra={"source": source, "people": len(ordered)}
        )
        return dict(zip(ordered, ("train", "valid"), strict=False))
    test_count = max(1, round(len(ordered) / 4))
    valid_count = max(1, round(len(ordered) / 4))
    splits = ["test"] * test_count + ["valid"] * valid_count
    splits += ["train"] * (len(ordered) - len(splits))
    return dict(zip(ordered, splits, strict=True))


def pick_photos(photo_files: Sequence[Path], limit: int, seed: int) -> list[Path]:
    """Pick at most `limit` photos, at random but the same for the same names and seed."""
    ordered = sorted(photo_files, key=lambda path: normalise_name(path.name))
    if len(ordered) <= limit:
        return ordered
    person = normalise_name(ordered[0].parent.name)
    picked = random.Random(f"{seed}/{person}").sample(ordered, limit)
    return sorted(picked, key=lambda path: normalise_name(path.name))


def _boxes_in_photo(
    labelled: LabelledPhoto, width: int, height: int
) -> list[tuple[float, float, float, float]] | None:
    """Return the labelled boxes in the decoded photo's pixels, or None if they cannot be."""
    boxes = [box.box for box in labelled.boxes]
    if (labelled.width, labelled.height) == (width, height) or labelled.width <= 0:
        return boxes
    if abs(labelled.width / labelled.height - width / height) > _ASPECT_TOLERANCE * width / height:
        return None
    # The same picture at another resolution: rescale the labels to it.
    scale_x, scale_y = width / labelled.width, height / labelled.height
    return [(x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y) for x0, y0, x1, y1 in boxes]


def _face_row(
    chip_path: str,
    photo_path: Path,
    source: str,
    split: str,
    labels: str,
    face: Face,
    group_key: str,
    photo_shape: tuple[int, ...],
) -> dict[str, str]:
    x_min, y_min, x_max, y_max = face.box
    outside_share = chip_outside_share(photo_shape[1], photo_shape[0], face.landmarks)
    landmarks = [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks]
    return {
        "chip": chip_path,
        "photo": str(photo_path.resolve()),
        "source": source,
        "split": split,
        "labels": labels,
        "x_min": f"{x_min:.2f}",
        "y_min": f"{y_min:.2f}",
        "x_max": f"{x_max:.2f}",
        "y_max": f"{y_max:.2f}",
        "detection_score": f"{face.detection_score:.5f}",
        "landmarks": json.dumps(landmarks),
        "group_key": group_key,
        "outside_share": f"{outside_share:.3f}",
    }


def _photo_row(
    labelled: LabelledPhoto,
    boxes: list[tuple[float, float, float, float]],
    split: str,
    group_key: str,
    width: int,
    height: int,
) -> dict[str, str]:
    box_records = [
        {"member": labelled_box.member, "x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}
        for labelled_box, (x0, y0, x1, y1) in zip(labelled.boxes, boxes, strict=True)
    ]
    return {
        "photo": str(labelled.path.resolve()),
        "split": split,
        "group_key": group_key,
        "width": str(width),
        "height": str(height),
        "boxes": json.dumps(box_records),
    }


def _chip_id(photo_path: Path, face_index: int) -> str:
    # From the photo's location (source, person or images folder, file), so that ids stay the
    # same from one run to the next and two sources never collide.
    location = normalise_name("/".join(photo_path.parts[-3:]))
    digest = hashlib.sha256(location.encode("utf-8")).hexdigest()[:16]
    return f"{digest}-{face_index:02d}"


def _record_folder(
    counts: GroupPhotoCounts, voc: VocFolder, used: int, group_keys: dict[Path, str]
) -> None:
    counts.photo_files = len(voc.photos) + len(voc.photos_without_labels)
    counts.labelled_photos = used
    counts.photos_without_labels = [path.name for path in voc.photos_without_labels]
    counts.labels_without_photos = [path.name for path in voc.labels_without_photos]
    counts.unreadable_annotations = [
        f"{annotation.path.name}: {annotation.reason}" for annotation in voc.unreadable_annotations
    ]
    group_sizes = Counter(group_keys.values())
    counts.duplicate_groups = len(group_sizes)
    counts.duplicate_group_sizes = sorted(
        (size for size in group_sizes.values() if size > 1), reverse=True
    )


def _finish_group_counts(counts: GroupPhotoCounts, photo_rows: list[dict[str, str]]) -> None:
    counts.processed_photos = len(photo_rows)
    counts.photos_per_split = dict(sorted(Counter(row["split"] for row in photo_rows).items()))
    counts.match_rate = (
        round(counts.matched / counts.labelled_boxes, 4) if counts.labelled_boxes else 0.0
    )
    logger.info(
        "group photos matched",
        extra={
            "labelled_boxes": counts.labelled_boxes,
            "matched": counts.matched,
            "match_rate": counts.match_rate,
        },
    )


def _count_faces(face_rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    counted: dict[str, dict[str, int]] = {}
    for row in face_rows:
        per_split = counted.setdefault(row["source"], {})
        per_split[row["split"]] = per_split.get(row["split"], 0) + 1
    return counted


def _mean_outside_share(face_rows: list[dict[str, str]]) -> dict[str, float]:
    """Average the chip share outside the photo per source (group, or each stranger source)."""
    shares: dict[str, list[float]] = {}
    for row in face_rows:
        source = row["source"] if row["source"] == GROUP_SOURCE else row["group_key"].split("/")[0]
        shares.setdefault(source, []).append(float(row["outside_share"]))
    means = {source: round(sum(values) / len(values), 3) for source, values in shares.items()}
    for source, mean in means.items():
        if mean > _OUTSIDE_SHARE_WARNING:
            # A frame of black around one source's chips lets a classifier tell them apart
            # without looking at the face.
            logger.warning(
                "chips mostly outside their photos", extra={"source": source, "mean_share": mean}
            )
    return means


def _log_progress(message: str, done: int, total: int, options: PrepareOptions) -> None:
    if done % max(options.progress_every, 1) == 0 or done == total:
        logger.info(message, extra={"done": done, "total": total})


def _write_outputs(
    out_folder: Path,
    face_rows: list[dict[str, str]],
    photo_rows: list[dict[str, str]],
    report: PrepareReport,
) -> None:
    write_text_atomic(out_folder / FACES_FILE, _csv_text(FACE_COLUMNS, face_rows))
    write_text_atomic(out_folder / PHOTOS_FILE, _csv_text(PHOTO_COLUMNS, photo_rows))
    write_text_atomic(
        out_folder / REPORT_FILE, json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n"
    )


def _csv_text(columns: Sequence[str], rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class _ChipWriter:
    """Write chips as PNG files under `<out>/chips`, each renamed into place when complete."""

    def __init__(self, out_folder: Path) -> None:
        self._folder = out_folder / CHIPS_FOLDER
        self._folder.mkdir(parents=True, exist_ok=True)

    def write(self, chip_id: str, chip: NDArray[np.uint8]) -> str:
        """Write one (size, size, 3) RGB chip and return its path relative to the out folder."""
        path = self._folder / f"{chip_id}.png"
        write_with_atomic(
            path,
            lambda temporary: Image.fromarray(chip).save(temporary, format="PNG"),
            is_durable=False,
        )
        return f"{CHIPS_FOLDER}/{path.name}"


@contextmanager
def _timed(timings_s: dict[str, float], step: str) -> Iterator[None]:
    """Add the seconds spent in the block to `timings_s[step]`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        timings_s[step] = round(timings_s.get(step, 0.0) + elapsed, 2)
