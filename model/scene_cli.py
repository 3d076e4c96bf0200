"""Register the scene model's subcommand: `memberlens scene-train`."""

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from model.cli_options import add_fit_arguments, fit_options, set_torch_threads
from model.scene import DEFAULT_SCENE_SIZE_PX, EFFICIENTNET_LITE0, SCENE_ARCHITECTURES

if TYPE_CHECKING:
    from service.settings import Settings

logger = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `scene-train` to the `memberlens` parser."""
    parser = subparsers.add_parser(
        "scene-train",
        help="train the whole-photo scene model and add it to a copy of a face bundle",
        description="Fine-tune an ImageNet body (EfficientNet-Lite0 by default) with a "
        "multilabel head on the photos of `memberlens scene-photos` (fastai, body frozen then "
        "unfrozen), tune the per-member image cuts on the valid scene photos, and write a "
        "bundle holding the face bundle's files and the scene model.",
    )
    parser.add_argument("--scene-photos", type=Path, required=True, help="from `scene-photos`")
    parser.add_argument("--face-bundle", type=Path, required=True, help="bundle to build on")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--architecture", choices=SCENE_ARCHITECTURES, default=EFFICIENTNET_LITE0)
    parser.add_argument("--size", type=int, default=DEFAULT_SCENE_SIZE_PX, help="input side, px")
    add_fit_arguments(parser, epochs=3, body_lr=2e-4)
    parser.add_argument(
        "--stranger-budget",
        type=float,
        default=0.02,
        help="largest share of valid stranger photos in which the image cuts may add a member",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.set_defaults(handler=_run_scene_train)


def _run_scene_train(args: argparse.Namespace, settings: "Settings") -> int:
    from model.scene_train import SceneTrainConfig, train_scene_bundle

    set_torch_threads(settings.torch_threads)
    config = SceneTrainConfig(
        scene_dir=args.scene_photos,
        face_bundle_dir=args.face_bundle,
        bundle_dir=args.out,
        architecture=args.architecture,
        size_px=args.size,
        stranger_budget=args.stranger_budget,
        overwrite=args.overwrite,
        **fit_options(args),
    )
    print(json.dumps(train_scene_bundle(config), indent=2, default=str))
    return 0
