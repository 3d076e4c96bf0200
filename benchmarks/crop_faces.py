"""Break the faces of scene crops down: found, named right, refused, misnamed; and the ceiling.

Usage:

    python benchmarks/crop_faces.py --bundle BUNDLE --scene-photos DIR [--split valid]
        [--pipeline-only]

For the crops of 1 to 4 members of one split, clean and degraded apart, prints how many
labelled faces the pipeline's detector found and how the pipeline (lifts included) named them,
and the share of crops whose every labelled face the detector finds. That share bounds the
exact-set rate the faces alone could reach, however well found faces were named: a member
whose face is not found can only come from the scene model.

Other face finders are tried on the same crops, to see whether another detector would raise
that bound: MTCNN at looser thresholds, on a copy with its contrast stretched (bad light), on
a copy enlarged 2x with no size cap (small faces), and dlib's CNN face detector when the
optional extra `peer` is installed (upsampled once, for crops of up to 700 px). The pipeline's
detector runs again among them, so that their times can be set against its own. A face counts
as found by any finder when one of them finds it. Each finder's cost is its time per crop and
its detections that match no labelled face (false finds, or faces nobody labelled).
`--pipeline-only` leaves the other finders out, to compare bundles quickly.
"""

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from data_tools.faces import DEFAULT_THRESHOLDS, FaceDetector, MtcnnDetector
from data_tools.matching import Box, match_faces
from data_tools.photos import load_photo
from model.pipeline import load_pipeline
from model.scene_data import labelled_boxes
from model.scene_tuning import SceneAnswers, answer_scene_photos

logger = logging.getLogger(__name__)

LOOSER_THRESHOLDS = (0.4, 0.5, 0.5)
ANY_FINDER = "any of them"
_NO_LIMIT = 1 << 40
# dlib's CNN detector enlarges the photo before its search; photos whose longer side would
# pass this are searched at their own size, which keeps its time and memory bounded.
_MAX_UPSAMPLED_SIDE_PX = 1400

Finder = Callable[[NDArray[np.uint8]], list[Box]]


@dataclass
class Tally:
    """Counts over the crops of one kind (clean or degraded)."""

    crops: int = 0
    faces: int = 0
    found: int = 0
    right: int = 0
    refused: int = 0
    misnamed: int = 0
    crops_exact: int = 0
    crops_all_found: int = 0
    missed_widths_px: list[float] = field(default_factory=list)
    found_by: dict[str, int] = field(default_factory=dict)
    crops_all_found_by: dict[str, int] = field(default_factory=dict)


@dataclass
class FinderCost:
    """What one finder costs over the crops: its time, and detections of no labelled face."""

    seconds: float = 0.0
    crops: int = 0
    unmatched: int = 0


def main() -> int:
    """Answer the crops with the bundle's pipeline and print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--scene-photos", type=Path, required=True)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--pipeline-only", action="store_true", help="try no other finder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    pipeline = load_pipeline(args.bundle, max_upload_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT)
    answers = answer_scene_photos(pipeline, args.scene_photos, args.split)
    finders = {} if args.pipeline_only else other_finders(pipeline.detector)
    _warm_up(finders)
    tallies = {"clean": Tally(), "degraded": Tally()}
    costs = {name: FinderCost() for name in finders}
    for row_number, (_, row) in enumerate(answers.rows.iterrows()):
        if not is_small_crop(answers, row_number, row["kind"]):
            continue
        photo = load_photo(
            args.scene_photos / row["image"], max_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT
        )
        tally = tallies["degraded" if row["degraded"] else "clean"]
        count_crop(answers, row_number, photo, finders, costs, tally)
    sys.stdout.write(_table(tallies, [*finders, ANY_FINDER] if finders else []))
    if finders:
        sys.stdout.write(_cost_table(costs))
    return 0


def other_finders(detector: FaceDetector) -> dict[str, Finder]:
    """Return the face finders tried beside the pipeline's, by name."""
    looser = MtcnnDetector(thresholds=LOOSER_THRESHOLDS)
    # Uncapped: the pipeline's detector shrinks photos over its max side, undoing enlargement.
    uncapped = MtcnnDetector(max_side_px=None)
    finders: dict[str, Finder] = {
        "MTCNN as the pipeline runs it": lambda photo: _boxes(detector, photo),
        f"MTCNN at thresholds {LOOSER_THRESHOLDS}": lambda photo: _boxes(looser, photo),
        "MTCNN, contrast stretched": lambda photo: _boxes(detector, _stretched(photo)),
        "MTCNN, photo enlarged 2x": lambda photo: _enlarged_boxes(uncapped, photo, 2),
    }
    dlib_finder = _dlib_cnn_finder()
    if dlib_finder is not None:
        finders["dlib CNN, upsampled once"] = dlib_finder
    return finders


def is_small_crop(answers: SceneAnswers, row_number: int, kind: str) -> bool:
    """Return whether a scene photo is a crop of 1 to 4 members that the pipeline could read."""
    n_members = int(answers.targets[row_number].sum())
    return kind == "crop" and 1 <= n_members <= 4 and answers.results[row_number] is not None


def count_crop(
    answers: SceneAnswers,
    row_number: int,
    photo: NDArray[np.uint8],
    finders: dict[str, Finder],
    costs: dict[str, FinderCost],
    tally: Tally,
) -> None:
    """Add one crop's faces, as the pipeline answered them and as each finder finds them."""
    result = answers.results[row_number]
    assert result is not None
    heads = labelled_boxes(answers.rows.iloc[row_number])
    faces = result["faces"]
    detections = [
        (face["box"]["x_min"], face["box"]["y_min"], face["box"]["x_max"], face["box"]["y_max"])
        for face in faces
    ]
    matching = match_faces([box for _, box in heads], detections)
    tally.crops += 1
    tally.faces += len(heads)
    tally.found += len(matching.matches)
    tally.crops_all_found += len(matching.matches) == len(heads)
    tally.crops_exact += {m["name"] for m in result["members"]} == {name for name, _ in heads}
    tally.missed_widths_px += [heads[i][1][2] - heads[i][1][0] for i in matching.missed_labelled]
    for match in matching.matches:
        answer = faces[match.detection_index]["member"]
        member = heads[match.labelled_index][0]
        tally.right += answer == member
        tally.refused += answer is None
        tally.misnamed += answer is not None and answer != member
    found_by_pipeline = {match.labelled_index for match in matching.matches}
    count_finders(photo, [box for _, box in heads], found_by_pipeline, finders, costs, tally)


def count_finders(
    photo: NDArray[np.uint8],
    head_boxes: list[Box],
    found_by_pipeline: set[int],
    finders: dict[str, Finder],
    costs: dict[str, FinderCost],
    tally: Tally,
) -> None:
    """Add what each finder finds of one crop's labelled faces, and what any of them finds."""
    found_by_any = set(found_by_pipeline)
    for name, finder in finders.items():
        boxes = _timed(finder, photo, costs[name])
        finder_matching = match_faces(head_boxes, boxes)
        costs[name].unmatched += len(boxes) - len(finder_matching.matches)
        found = {match.labelled_index for match in finder_matching.matches}
        found_by_any |= found
        _add_found(tally, name, len(found), len(head_boxes))
    _add_found(tally, ANY_FINDER, len(found_by_any), len(head_boxes))


def _table(tallies: dict[str, Tally], finder_names: list[str]) -> str:
    lines = [
        f"| crops of 1 to 4 members | {' | '.join(tallies)} |",
        "| --- | " + " | ".join("---" for _ in tallies) + " |",
    ]
    figures: list[tuple[str, Callable[[Tally], str]]] = [
        ("crops", lambda t: f"{t.crops}"),
        ("labelled faces", lambda t: f"{t.faces}"),
        ("found by the detector", lambda t: _share(t.found, t.faces)),
        ("  named right", lambda t: _share(t.right, t.faces)),
        ("  refused as nobody", lambda t: _share(t.refused, t.faces)),
        ("  named as another member", lambda t: _share(t.misnamed, t.faces)),
        ("exact-set rate of the answers", lambda t: _share(t.crops_exact, t.crops)),
        ("crops with every face found", lambda t: _share(t.crops_all_found, t.crops)),
        ("median width of the labelled heads not found, px", _median_missed_width),
    ]
    for name in finder_names:
        figures += [
            (f"found by {name}", _found_by(name)),
            (f"  crops with every face found by {name}", _all_found_by(name)),
        ]
    lines += [
        f"| {name} | " + " | ".join(show(tally) for tally in tallies.values()) + " |"
        for name, show in figures
    ]
    lines.append(f"\n(pipeline thresholds {DEFAULT_THRESHOLDS})\n\n")
    return "\n".join(lines)


def _cost_table(costs: dict[str, FinderCost]) -> str:
    lines = [
        "| finder | ms per crop | detections matching no labelled face |",
        "| --- | --- | --- |",
    ]
    for name, cost in costs.items():
        per_crop_ms = 1000 * cost.seconds / cost.crops if cost.crops else 0.0
        lines.append(f"| {name} | {per_crop_ms:.0f} | {cost.unmatched} |")
    return "\n".join(lines) + "\n"


def _median_missed_width(tally: Tally) -> str:
    return f"{np.median(tally.missed_widths_px):.0f}" if tally.missed_widths_px else "-"


def _found_by(name: str) -> Callable[[Tally], str]:
    return lambda t: _share(t.found_by.get(name, 0), t.faces)


def _all_found_by(name: str) -> Callable[[Tally], str]:
    return lambda t: _share(t.crops_all_found_by.get(name, 0), t.crops)


def _warm_up(finders: dict[str, Finder]) -> None:
    # A network's first call sets up what later calls reuse; it is left out of the times.
    grey = np.full((160, 160, 3), 128, dtype=np.uint8)
    for finder in finders.values():
        finder(grey)


def _add_found(tally: Tally, name: str, found: int, faces: int) -> None:
    tally.found_by[name] = tally.found_by.get(name, 0) + found
    tally.crops_all_found_by[name] = tally.crops_all_found_by.get(name, 0) + (found == faces)


def _timed(finder: Finder, photo: NDArray[np.uint8], cost: FinderCost) -> list[Box]:
    started = time.perf_counter()
    boxes = finder(photo)
    cost.seconds += time.perf_counter() - started
    cost.crops += 1
    return boxes


def _boxes(detector: FaceDetector, photo: NDArray[np.uint8]) -> list[Box]:
    return [face.box for face in detector.detect(photo)]


def _stretched(photo: NDArray[np.uint8]) -> NDArray[np.uint8]:
    # The darkest and brightest 1% of pixels are clipped, the rest spread over 0..255.
    stretched = ImageOps.autocontrast(Image.fromarray(photo), cutoff=1)
    return np.asarray(stretched, dtype=np.uint8)


def _enlarged_boxes(detector: FaceDetector, photo: NDArray[np.uint8], factor: int) -> list[Box]:
    height, width = photo.shape[:2]
    enlarged = Image.fromarray(photo).resize(
        (width * factor, height * factor), Image.Resampling.BICUBIC
    )
    return [
        (x_min / factor, y_min / factor, x_max / factor, y_max / factor)
        for x_min, y_min, x_max, y_max in _boxes(detector, np.asarray(enlarged, np.uint8))
    ]


def _dlib_cnn_finder() -> Finder | None:
    try:
        import dlib
        import face_recognition_models
    except ImportError:
        logger.warning("dlib is not installed (the optional extra `peer`): its CNN is left out")
        return None
    model = dlib.cnn_face_detection_model_v1(
        face_recognition_models.cnn_face_detector_model_location()
    )

    def find(photo: NDArray[np.uint8]) -> list[Box]:
        upsamplings = 1 if 2 * max(photo.shape[:2]) <= _MAX_UPSAMPLED_SIDE_PX else 0
        # dlib's right and bottom are the last pixels inside the box, hence the + 1.
        return [
            (
                float(detection.rect.left()),
                float(detection.rect.top()),
                float(detection.rect.right() + 1),
                float(detection.rect.bottom() + 1),
            )
            for detection in model(photo, upsamplings)
        ]

    return find


def _share(count: int, total: int) -> str:
    return f"{count} ({count / total:.3f})" if total else "0"


if __name__ == "__main__":
    sys.exit(main())
