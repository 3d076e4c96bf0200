"""Measure MTCNN's recall of labelled faces and its time per photo under several settings.

Run from the repository root:

    python benchmarks/detector_recall.py [--photos ../shared/datasets/bts-group-photos]

A labelled face counts as found when a detection matches its box one to one
(`data_tools.matching.match_faces`). Prints a Markdown table to stdout.
"""

import argparse
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from data_tools.faces import MtcnnDetector
from data_tools.matching import match_faces
from data_tools.photos import load_photo
from data_tools.voc import LabelledPhoto, read_voc_folder

logger = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPOSITORY_ROOT.parent / "shared" / "datasets" / "bts-group-photos"
MAX_SIDES_PX: tuple[int | None, ...] = (None, 1024, 800, 640)
MIN_FACE_SIZES_PX = (20, 40)
_PHOTO_LIMIT_BYTES = 100 * 1024 * 1024
_PHOTO_LIMIT_PIXELS = 100_000_000


@dataclass(frozen=True)
class RecallRow:
    """The outcome of one detector setting over all photos."""

    max_side_px: int | None
    min_face_size_px: int
    labelled_faces: int
    found_faces: int
    unmatched_detections: int
    mean_s_per_photo: float
    median_s_per_photo: float

    @property
    def recall(self) -> float:
        """Share of labelled faces matched by a detection."""
        return self.found_faces / self.labelled_faces if self.labelled_faces else 0.0


def main() -> int:
    """Run every setting on the labelled photos and print the table."""
    arguments = _parse_arguments()
    logging.basicConfig(level=logging.WARNING)
    labelled = read_voc_folder(arguments.photos).photos[: arguments.limit]
    photos = [
        load_photo(photo.path, max_bytes=_PHOTO_LIMIT_BYTES, max_pixels=_PHOTO_LIMIT_PIXELS)
        for photo in labelled
    ]
    rows = [
        _measure(labelled, photos, max_side_px, min_face_size_px)
        for min_face_size_px in MIN_FACE_SIZES_PX
        for max_side_px in MAX_SIDES_PX
    ]
    _print_table(rows, len(photos))
    return 0


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="VOC folder")
    parser.add_argument("--limit", type=int, default=None, help="use the first N photos only")
    return parser.parse_args()


def _measure(
    labelled: list[LabelledPhoto],
    photos: list[NDArray[np.uint8]],
    max_side_px: int | None,
    min_face_size_px: int,
) -> RecallRow:
    detector = MtcnnDetector(max_side_px=max_side_px, min_face_size_px=min_face_size_px)
    detector.detect(photos[0])  # warm-up: the first call pays one-off allocations
    found = unmatched = 0
    seconds: list[float] = []
    for labelled_photo, photo in zip(labelled, photos, strict=True):
        started = time.perf_counter()
        faces = detector.detect(photo)
        seconds.append(time.perf_counter() - started)
        matching = match_faces(
            [box.box for box in labelled_photo.boxes], [face.box for face in faces]
        )
        found += len(matching.matches)
        unmatched += len(matching.unmatched_detections)
    return RecallRow(
        max_side_px=max_side_px,
        min_face_size_px=min_face_size_px,
        labelled_faces=sum(len(photo.boxes) for photo in labelled),
        found_faces=found,
        unmatched_detections=unmatched,
        mean_s_per_photo=statistics.fmean(seconds),
        median_s_per_photo=statistics.median(seconds),
    )


def _print_table(rows: list[RecallRow], photo_count: int) -> None:
    lines = [
        f"MTCNN on {photo_count} labelled photos",
        "",
        "| max_side_px | min_face_size_px | recall | found / labelled | unmatched detections "
        "| mean s/photo | median s/photo |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines.extend(
        f"| {row.max_side_px or 'none'} | {row.min_face_size_px} | {row.recall:.3f} "
        f"| {row.found_faces} / {row.labelled_faces} | {row.unmatched_detections} "
        f"| {row.mean_s_per_photo:.3f} | {row.median_s_per_photo:.3f} |"
        for row in rows
    )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
