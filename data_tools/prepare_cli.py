"""The `memberlens prepare` subcommand: labelled photos in, aligned face chips and tables out."""

import argparse
import json
import logging
import sys
from pathlib import Path

from data_tools.faces import DEFAULT_MAX_SIDE_PX, DEFAULT_MIN_FACE_SIZE_PX
from service.settings import Settings

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Detect the faces of labelled group photos (a folder with images/ and Pascal VOC
annotations/), match them to the labelled boxes, align each to a 150x150 chip and
split them by duplicate group into train and valid. Optionally add one face per
photo of strangers (SOURCE/PERSON/*.jpg), split by person into train, valid and
test. Writes chips/, faces.csv, photos.csv and report.json into --out, and prints
a summary of the report."""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `prepare` to the `memberlens` parser."""
    parser = subparsers.add_parser(
        "prepare",
        help="detect, match, align and split faces into a prepared folder",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--photos", type=Path, required=True, metavar="DIR",
        help="folder with images/ (group photos) and annotations/ (Pascal VOC XML)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR",
        help="folder to write chips/, faces.csv, photos.csv and report.json into",
    )  # fmt: skip
    parser.add_argument(
        "--strangers", type=Path, default=None, metavar="DIR",
        help="folder of sources of strangers, each a folder of people, each a folder of photos",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits (default: 0)")
    parser.add_argument(
        "--valid-share", type=float, default=0.2, metavar="SHARE",
        help="share of duplicate groups of group photos put in valid (default: 0.2)",
    )  # fmt: skip
    parser.add_argument(
        "--limit-photos", type=_positive_int, default=None, metavar="N",
        help="use only the first N labelled group photos, by file name (for quick runs)",
    )  # fmt: skip
    parser.add_argument(
        "--max-stranger-photos-per-person", type=_positive_int, default=100, metavar="N",
        help="at most N photos per stranger, picked at random by the seed (default: 100)",
    )  # fmt: skip
    _add_detector_arguments(parser)
    parser.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens prepare` and print the report's summary; return the exit status."""
    # Imported here: prepare pulls in the face code, which the parser does not need.
    from data_tools.prepare import PrepareOptions, prepare_dataset

    if settings.torch_threads > 0:
        import torch

        torch.set_num_threads(settings.torch_threads)

    options = PrepareOptions(
        photos_folder=args.photos,
        out_folder=args.out,
        strangers_folder=args.strangers,
        seed=args.seed,
        valid_share=args.valid_share,
        limit_photos=args.limit_photos,
        max_stranger_photos_per_person=args.max_stranger_photos_per_person,
        min_face_size_px=args.min_face_size_px,
        max_side_px=args.max_side_px or None,
        max_photo_bytes=settings.limits.max_upload_bytes,
        max_photo_pixels=settings.limits.max_pixels,
    )
    logger.info("prepare started", extra={"options": str(options)})
    report = prepare_dataset(options)

    group = report.group_photos
    summary = {
        "out": str(args.out),
        "group_photos": group.processed_photos,
        "photos_per_split": group.photos_per_split,
        "labelled_boxes": group.labelled_boxes,
        "matched": group.matched,
        "match_rate": group.match_rate,
        "unreadable_photos": len(group.unreadable_photos),
        "photos_without_labels": len(group.photos_without_labels),
        "labels_without_photos": len(group.labels_without_photos),
        "stranger_photos_used": {name: s.photos_used for name, s in report.strangers.items()},
        "faces_per_split": report.faces_per_split,
        "seconds": report.timings_s.get("total"),
    }
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


def _add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-face-size-px", type=_positive_int, default=DEFAULT_MIN_FACE_SIZE_PX, metavar="PX",
        help="smallest face MTCNN looks for, in pixels of the image it sees (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-side-px", type=int, default=DEFAULT_MAX_SIDE_PX or 0, metavar="PX",
        help="detect on a copy whose longer side is at most PX; 0 detects at full size "
        "(default: %(default)s)",
    )  # fmt: skip


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value
