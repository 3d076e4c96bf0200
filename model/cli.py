"""Register the model subcommands: train, lr-find, thresholds, evaluate and identify."""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.errors import InvalidParameterError, MemberlensError
from model import scene_cli
from model.cli_options import add_fit_arguments, fit_options, set_torch_threads

if TYPE_CHECKING:
    from service.settings import Settings

logger = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the model subcommands to the `memberlens` parser."""
    _register_train(subparsers)
    _register_lr_find(subparsers)
    _register_thresholds(subparsers)
    _register_evaluate(subparsers)
    _register_identify(subparsers)
    scene_cli.register(subparsers)


def _register_train(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the face models on prepared faces and write a bundle",
        description="Fine-tune dlib's face body with a multilabel head (fastai), once per "
        "seed of --models, tune the thresholds on the valid split, and write a model bundle.",
    )
    parser.add_argument("--prepared", type=Path, required=True, help="folder from `prepare`")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument(
        "--roster",
        type=Path,
        help="roster YAML (e.g. rosters/bts.yaml) fixing the members and their order; "
        "default: the members found in the labels, sorted",
    )
    add_fit_arguments(parser, epochs=10, body_lr=5e-5)
    parser.add_argument(
        "--stranger-cost",
        type=float,
        default=2.0,
        help="threshold tuning: one stranger named costs this many correct names",
    )
    parser.add_argument(
        "--models",
        type=int,
        default=2,
        help="face models to train, with seeds SEED, SEED+1, ...; the bundle averages them",
    )
    parser.add_argument(
        "--phone-share",
        type=float,
        default=0.0,
        help="share of training chips blurred, noised and JPEG-coded like phone photos",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.set_defaults(handler=_run_train)


def _register_lr_find(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "lr-find",
        help="run fastai's learning-rate finder and save its plot",
        description="Run fastai's lr_find on the head (body frozen) and save the loss/rate plot.",
    )
    parser.add_argument("--prepared", type=Path, required=True, help="folder from `prepare`")
    parser.add_argument("--plot", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--unfrozen", action="store_true", help="search with the body unfrozen")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run_lr_find)


def _register_thresholds(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    parser = subparsers.add_parser(
        "thresholds",
        help="show, tune or set a bundle's thresholds",
        description="Thresholds live in the bundle's thresholds.json; a running service "
        "uses rewritten thresholds from its next request on.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="print the thresholds")
    show.add_argument("--bundle", type=Path, required=True)
    show.set_defaults(handler=_run_thresholds_show)

    tune = actions.add_parser("tune", help="retune on the valid split, without retraining")
    tune.add_argument("--bundle", type=Path, required=True)
    tune.add_argument("--prepared", type=Path, required=True, help="folder from `prepare`")
    tune.add_argument("--stranger-cost", type=float, default=2.0)
    tune.add_argument(
        "--scene-photos",
        type=Path,
        help="folder from `scene-photos`; needed to tune the image cuts of a bundle with a "
        "scene model",
    )
    tune.add_argument(
        "--stranger-budget",
        type=float,
        default=0.02,
        help="image cuts: largest share of valid stranger photos in which any member is added",
    )
    tune.set_defaults(handler=_run_thresholds_tune)

    edit = actions.add_parser("set", help="set one member's thresholds by hand")
    edit.add_argument("--bundle", type=Path, required=True)
    edit.add_argument("--member", required=True)
    edit.add_argument("--face", type=float, help="probability cut in [0, 1]")
    edit.add_argument("--gallery", type=float, help="similarity cut in [-1, 1]")
    edit.set_defaults(handler=_run_thresholds_set)

    context = actions.add_parser(
        "context",
        help="set or switch off the looser cuts for faces among named members",
        description="A face that fails its own cuts may still take a member not yet named in "
        "its photo, once --min-named faces there passed theirs, when it reaches these cuts.",
    )
    context.add_argument("--bundle", type=Path, required=True)
    context.add_argument("--off", action="store_true", help="every face on its own cuts only")
    context.add_argument("--min-named", type=int, help="faces named on their own cuts first")
    context.add_argument("--face", type=float, help="probability cut in [0, 1]")
    context.add_argument("--gallery", type=float, help="similarity cut in [-1, 1]")
    context.set_defaults(handler=_run_thresholds_context)

    lift = actions.add_parser(
        "lift",
        help="set or switch off the cuts under which the scene model names a refused face",
        description="In a photo where some face was named, a face named nobody may take its "
        "most probable member not yet named when that probability reaches --face and the "
        "scene model scores the member at least --image-share times their image cut.",
    )
    lift.add_argument("--bundle", type=Path, required=True)
    lift.add_argument("--off", action="store_true", help="the scene model names no face")
    lift.add_argument("--face", type=float, help="probability cut in [0, 1]")
    lift.add_argument("--image-share", type=float, help="share of the image cut, in [0, 1]")
    lift.set_defaults(handler=_run_thresholds_lift)


def _register_evaluate(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a bundle on photos it never trained on",
        description="Run the whole pipeline on the group photos of one split and on stranger "
        "photos, and report per-face accuracy, member-set precision/recall/F1, exact-set rate "
        "and the share of stranger faces named as a member.",
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True, help="folder from `prepare`")
    parser.add_argument("--split", default="valid", help="group photos of this split")
    parser.add_argument(
        "--stranger-split", default="test", help="stranger photos of this split ('all' for all)"
    )
    parser.add_argument("--report", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--scene-photos",
        type=Path,
        help="folder from `scene-photos`: also score face-only, scene-only and fused answers "
        "side by side on its photos of --split",
    )
    parser.add_argument("--plots", type=Path, help="folder for PNG plots (with --scene-photos)")
    parser.set_defaults(handler=_run_evaluate)


def _register_identify(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "identify",
        help="name the members in photos",
        description="Print, for each photo, the same answer as POST /v1/identify.",
    )
    parser.add_argument("photos", type=Path, nargs="+", metavar="PHOTO")
    parser.add_argument("--bundle", type=Path, help="bundle folder (or MEMBERLENS_BUNDLE)")
    parser.add_argument("--format", choices=("json", "table"), default="table")
    parser.set_defaults(handler=_run_identify)


def _run_train(args: argparse.Namespace, settings: "Settings") -> int:
    from model.train import TrainConfig, train_bundle

    set_torch_threads(settings.torch_threads)
    config = TrainConfig(
        prepared_dir=args.prepared,
        bundle_dir=args.out,
        roster_path=args.roster,
        stranger_cost=args.stranger_cost,
        models=args.models,
        phone_share=args.phone_share,
        overwrite=args.overwrite,
        **fit_options(args),
    )
    metrics = train_bundle(config)
    _print_json(metrics)
    return 0


def _run_lr_find(args: argparse.Namespace, settings: "Settings") -> int:
    from model.train import find_learning_rate

    suggestion = find_learning_rate(
        args.prepared,
        args.plot,
        batch_size=args.batch_size,
        seed=args.seed,
        is_unfrozen=args.unfrozen,
    )
    _print_json({"plot": str(args.plot), **suggestion})
    return 0


def _run_thresholds_show(args: argparse.Namespace, settings: "Settings") -> int:
    from model.bundle import read_manifest
    from model.thresholds import load_thresholds

    roster = read_manifest(args.bundle)["roster"]
    thresholds = load_thresholds(args.bundle, roster)
    print(f"{'member':<12}{'face':>8}{'gallery':>10}{'image':>8}")
    for member in roster:
        image = thresholds.image.get(member)
        image_text = f"{image:>8.3f}" if image is not None else f"{'-':>8}"
        print(
            f"{member:<12}{thresholds.face[member]:>8.3f}{thresholds.gallery[member]:>10.3f}"
            f"{image_text}"
        )
    context = thresholds.context
    print(
        f"context: after {context.min_named} faces named, face {context.face:.3f}, "
        f"gallery {context.gallery:.3f}"
        if context
        else "context: off"
    )
    if thresholds.image:
        lift = thresholds.lift
        print(
            f"lift: face {lift.face:.3f}, image share {lift.image_share:.3f}"
            if lift
            else "lift: off"
        )
    print(f"digest: {thresholds.digest()}")
    return 0


def _run_thresholds_tune(args: argparse.Namespace, settings: "Settings") -> int:
    from model.bundle import read_manifest

    set_torch_threads(settings.torch_threads)
    if "scene_model" in read_manifest(args.bundle):
        from model.scene_tuning import retune_with_scene

        thresholds = retune_with_scene(
            args.bundle,
            args.prepared,
            args.scene_photos,
            stranger_cost=args.stranger_cost,
            stranger_budget=args.stranger_budget,
        )
    else:
        from model.tuning import retune_thresholds

        thresholds = retune_thresholds(args.bundle, args.prepared, stranger_cost=args.stranger_cost)
    _print_json(thresholds.to_json())
    return 0


def _run_thresholds_set(args: argparse.Namespace, settings: "Settings") -> int:
    from model.bundle import read_manifest
    from model.thresholds import load_thresholds, save_thresholds

    if args.face is None and args.gallery is None:
        raise InvalidParameterError("give --face, --gallery or both")
    roster = read_manifest(args.bundle)["roster"]
    thresholds = load_thresholds(args.bundle, roster).with_member(
        args.member, face=args.face, gallery=args.gallery
    )
    save_thresholds(args.bundle, thresholds)
    print(
        f"{args.member}: face {thresholds.face[args.member]:.3f}, "
        f"gallery {thresholds.gallery[args.member]:.3f} ({thresholds.digest()})"
    )
    return 0


def _run_thresholds_context(args: argparse.Namespace, settings: "Settings") -> int:
    from model.bundle import read_manifest
    from model.thresholds import ContextCuts, load_thresholds, save_thresholds

    _require_off_or_all(
        args.off, (args.min_named, args.face, args.gallery), "--min-named, --face and --gallery"
    )
    roster = read_manifest(args.bundle)["roster"]
    context = None if args.off else ContextCuts(args.min_named, args.face, args.gallery)
    thresholds = load_thresholds(args.bundle, roster).with_context(context)
    save_thresholds(args.bundle, thresholds)
    print(f"context: {json.dumps(context.to_json() if context else None)} ({thresholds.digest()})")
    return 0


def _run_thresholds_lift(args: argparse.Namespace, settings: "Settings") -> int:
    from model.bundle import read_manifest
    from model.thresholds import LiftCuts, load_thresholds, save_thresholds

    _require_off_or_all(args.off, (args.face, args.image_share), "--face and --image-share")
    roster = read_manifest(args.bundle)["roster"]
    lift = None if args.off else LiftCuts(args.face, args.image_share)
    thresholds = load_thresholds(args.bundle, roster).with_lift(lift)
    save_thresholds(args.bundle, thresholds)
    print(f"lift: {json.dumps(lift.to_json() if lift else None)} ({thresholds.digest()})")
    return 0


def _require_off_or_all(off: bool, values: tuple[object, ...], options: str) -> None:
    """Refuse a command given neither `--off` nor all its cuts, or `--off` with any cut."""
    if off == any(value is not None for value in values) or (not off and None in values):
        raise InvalidParameterError(f"give either --off, or {options}")


def _run_evaluate(args: argparse.Namespace, settings: "Settings") -> int:
    from model.evaluate import evaluate_bundle, format_report

    set_torch_threads(settings.torch_threads)
    report = evaluate_bundle(
        args.bundle,
        args.prepared,
        split=args.split,
        stranger_split=args.stranger_split,
        max_pixels=settings.limits.max_pixels,
    )
    if args.scene_photos:
        from model.evaluate_scene import evaluate_scene_photos

        report["scene_photos"] = evaluate_scene_photos(
            args.bundle, args.scene_photos, split=args.split, plots_dir=args.plots
        )
    if args.report:
        from data_tools.atomic import write_json_atomic

        write_json_atomic(args.report, report)
    print(format_report(report))
    if args.scene_photos:
        from model.evaluate_scene import format_scene_report

        print(format_scene_report(report["scene_photos"]))
    return 0


def _run_identify(args: argparse.Namespace, settings: "Settings") -> int:
    from model.pipeline import load_pipeline

    bundle = args.bundle or settings.bundle
    if bundle is None:
        raise InvalidParameterError("no bundle: pass --bundle or set MEMBERLENS_BUNDLE")
    pipeline = load_pipeline(
        bundle,
        max_upload_bytes=settings.limits.max_upload_bytes,
        max_pixels=settings.limits.max_pixels,
        torch_threads=settings.torch_threads,
    )
    status = 0
    results: dict[str, Any] = {}
    for photo in args.photos:
        try:
            results[str(photo)] = pipeline.identify(photo.read_bytes())
        except OSError as err:
            print(f"{photo}: cannot read: {err.strerror}", file=sys.stderr)
            status = 1
        except MemberlensError as err:
            # One bad photo is reported and must not stop the others.
            print(f"{photo}: {err}", file=sys.stderr)
            status = 1
    if args.format == "json":
        _print_json(results)
    else:
        for photo_name, result in results.items():
            print(_format_table(photo_name, result))
    return status


def _format_table(photo_name: str, result: Any) -> str:
    lines = [
        f"{photo_name}  ({result['image']['width']}x{result['image']['height']}, "
        f"{len(result['faces'])} faces, {result['timings_ms']['total']:.0f} ms)"
    ]
    if not result["faces"]:
        lines.append("  no face found")
    for face in result["faces"]:
        box = face["box"]
        where = f"({box['x_min']},{box['y_min']})-({box['x_max']},{box['y_max']})"
        best = ", ".join(f"{c['name']} {c['score']:.2f}" for c in face["candidates"])
        name = face["member"] or "nobody known"
        lines.append(f"  {name:<14}{where:<26}{best}")
    return "\n".join(lines)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
