"""Break the faces of scene crops down: found, named right, refused, misnamed; and the ceiling.

Usage:

    python benchmarks/crop_faces.py --bundle BUNDLE --scene-photos DIR [--split valid]

For the crops of 1 to 4 members of one split, clean and degraded apart, prints how many
labelled faces the pipeline's detector found and how the pipeline (lifts included) named them,
how many a looser detector would find, and the share of crops whose every labelled face the
detector finds, at the pipeline's and at the looser thresholds. That share bounds the
exact-set rate the faces alone could reach, however well found faces were named: a member
whose face is not found can only come from the scene model.
"""

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_tools.faces import DEFAULT_THRESHOLDS, MtcnnDetector
from data_tools.matching import match_faces
from data_tools.photos import load_photo
from model.pipeline import load_pipeline
from model.scene_data import labelled_boxes
from model.scene_tuning import answer_scene_photos

LOOSER_THRESHOLDS = (0.4, 0.5, 0.5)
_NO_LIMIT = 1 << 40


@dataclass
class Tally:
    """Counts over the crops of one kind (clean or degraded)."""

    crops: int = 0
    faces: int = 0
    found: int = 0
    right: int = 0
    refused: int = 0
    misnamed: int = 0
    found_looser: int = 0
    crops_all_found: int = 0
    crops_all_found_looser: int = 0
    crops_exact: int = 0


def main() -> int:
    """Answer the crops with the bundle's pipeline and print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--scene-photos", type=Path, required=True)
    parser.add_argument("--split", default="valid")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    pipeline = load_pipeline(args.bundle, max_upload_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT)
    answers = answer_scene_photos(pipeline, args.scene_photos, args.split)
    looser = MtcnnDetector(thresholds=LOOSER_THRESHOLDS)
    roster = pipeline.bundle.roster
    tallies = {"clean": Tally(), "degraded": Tally()}
    for row_number, (_, row) in enumerate(answers.rows.iterrows()):
        result = answers.results[row_number]
        n_members = int(answers.targets[row_number].sum())
        if row["kind"] != "crop" or not 1 <= n_members <= 4 or result is None:
            continue
        tally = tallies["degraded" if row["degraded"] else "clean"]
        heads = labelled_boxes(row)
        faces = result["faces"]
        detections = [
            (f["box"]["x_min"], f["box"]["y_min"], f["box"]["x_max"], f["box"]["y_max"])
            for f in faces
        ]
        matching = match_faces([box for _, box in heads], detections)
        photo = load_photo(
            args.scene_photos / row["image"], max_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT
        )
        looser_matching = match_faces(
            [box for _, box in heads], [face.box for face in looser.detect(photo)]
        )
        tally.crops += 1
        tally.faces += len(heads)
        tally.found += len(matching.matches)
        tally.found_looser += len(looser_matching.matches)
        tally.crops_all_found += len(matching.matches) == len(heads)
        tally.crops_all_found_looser += len(looser_matching.matches) == len(heads)
        named = {member["name"] for member in result["members"]}
        truth = {roster[index] for index in np.flatnonzero(answers.targets[row_number])}
        tally.crops_exact += named == truth
        for match in matching.matches:
            answer = faces[match.detection_index]["member"]
            member = heads[match.labelled_index][0]
            tally.right += answer == member
            tally.refused += answer is None
            tally.misnamed += answer is not None and answer != member
    sys.stdout.write(_table(tallies))
    return 0


def _table(tallies: dict[str, Tally]) -> str:
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
        (f"found at thresholds {LOOSER_THRESHOLDS}", lambda t: _share(t.found_looser, t.faces)),
        ("exact-set rate of the answers", lambda t: _share(t.crops_exact, t.crops)),
        ("crops with every face found", lambda t: _share(t.crops_all_found, t.crops)),
        (
            f"  the same at thresholds {LOOSER_THRESHOLDS}",
            lambda t: _share(t.crops_all_found_looser, t.crops),
        ),
    ]
    lines += [
        f"| {name} | " + " | ".join(show(tally) for tally in tallies.values()) + " |"
        for name, show in figures
    ]
    lines.append(f"\n(pipeline thresholds {DEFAULT_THRESHOLDS})\n")
    return "\n".join(lines)


def _share(count: int, total: int) -> str:
    return f"{count} ({count / total:.3f})" if total else "0"


if __name__ == "__main__":
    sys.exit(main())
