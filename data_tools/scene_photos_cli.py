"""The `memberlens scene-photos` subcommand: make the scene model's training and valid photos."""

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from data_tools.scene_photos import ScenePhotoOptions, make_scene_photos

if TYPE_CHECKING:
    from service.settings import Settings

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
From a folder written by `memberlens prepare`, make whole photos for the scene model: each
group photo as it is and degraded, crops holding 1 to 4 labelled heads whole (cutting none),
collages of crops, and stranger photos with the empty label; a share degraded like phone
photos. Writes images/ and scene.csv. The same seed makes the same photos."""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `scene-photos` to the `memberlens` parser."""
    parser = subparsers.add_parser(
        "scene-photos", help="make whole-photo sets for the scene model", description=_DESCRIPTION
    )
    parser.add_argument("--prepared", type=Path, required=True, help="folder from `prepare`")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-crops-per-photo", type=int, default=8)
    parser.add_argument("--valid-crops-per-photo", type=int, default=4)
    parser.add_argument("--train-collages", type=int, default=250)
    parser.add_argument("--valid-collages", type=int, default=20)
    parser.add_argument("--train-strangers", type=int, default=300)
    parser.add_argument("--valid-strangers", type=int, default=100)
    parser.add_argument("--degraded-share", type=float, default=0.35)
    parser.add_argument("--train-max-side-px", type=int, default=448)
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=("train", "valid"),
        default=["train", "valid"],
        help="make only these splits (a second valid set with another seed, for example)",
    )
    parser.set_defaults(handler=run_scene_photos)


def run_scene_photos(args: argparse.Namespace, settings: "Settings") -> int:
    """Make the photos and print how many of each kind were written."""
    options = ScenePhotoOptions(
        seed=args.seed,
        crops_per_photo={"train": args.train_crops_per_photo, "valid": args.valid_crops_per_photo},
        collages={"train": args.train_collages, "valid": args.valid_collages},
        max_strangers={"train": args.train_strangers, "valid": args.valid_strangers},
        degraded_share=args.degraded_share,
        max_side_px={"train": args.train_max_side_px, "valid": 1024},
        splits=tuple(args.splits),
    )
    table = make_scene_photos(args.prepared, args.out, options)
    counts = table.groupby(["split", "kind"]).size()
    print(json.dumps({f"{split}/{kind}": int(n) for (split, kind), n in counts.items()}, indent=2))
    return 0
