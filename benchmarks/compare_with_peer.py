"""Compare memberlens with the face_recognition k-NN peer in one run: same photos, same threads.

Run: python benchmarks/compare_with_peer.py --bundle bundles/bts --prepared prepared/bts
         [--threads 1] [--limit N] [--limit-strangers N] [--out reports/compare_with_peer.json]
Needs the optional extra `peer`. Both products answer every valid group photo and every
test-split stranger photo, one after the other on each photo, so that a busy machine slows both
alike; both are scored by model/evaluate.py. Writes the table to stdout and the figures to --out.
"""

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peer import (
    DEFAULT_TUNING_STRANGER_PHOTOS,
    GroupPhoto,
    PeerTrainingReport,
    read_group_photos,
    read_stranger_photos,
    spread_evenly,
    train_peer,
)
from threadpoolctl import threadpool_limits

from data_tools.errors import MemberlensError
from data_tools.matching import match_faces
from model.evaluate import PhotoScore, score_photo, summarise_scores
from model.pipeline import load_pipeline
from model.results import IdentifyResult

logger = logging.getLogger(__name__)

PRODUCTS = ("memberlens", "peer")
NO_BYTE_LIMIT = 1 << 40
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_OUT = Path("reports/compare_with_peer.json")

Identify = Callable[[bytes], IdentifyResult]


@dataclass
class ProductRun:
    """Everything one product answered in the run, photo by photo."""

    scores: list[PhotoScore] = field(default_factory=list)
    labelled_faces_detected: int = 0
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    stranger_faces: int = 0
    stranger_faces_named: int = 0
    stranger_named_as: dict[str, int] = field(default_factory=dict)


def main() -> None:
    """Load both products, run them on the same photos, print the table, write the JSON."""
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    group_photos = read_group_photos(args.prepared, args.split)[: args.limit or None]
    stranger_photos = spread_evenly(
        read_stranger_photos(args.prepared, args.stranger_split), args.limit_strangers
    )
    load_before = os.getloadavg()

    # One limit for every thread pool in the process: torch's own, and the OpenMP and BLAS pools
    # that numpy and torch load. dlib-bin links no BLAS and, as measured by the "cores busy"
    # row, its HOG detector and descriptor stay on one core whatever the limit.
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        products, peer_report = _load_products(args)
        runs = run_both(products, group_photos, stranger_photos)

    report = build_report(args, runs, peer_report, group_photos, stranger_photos, load_before)
    sys.stdout.write(format_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(f"figures written to {args.out}\n")


def run_both(
    products: dict[str, Identify], group_photos: list[GroupPhoto], stranger_photos: list[Path]
) -> dict[str, ProductRun]:
    """Answer each photo with both products, alternating which goes first, and score them.

    A photo that either product fails on is left out for both, so both are scored on one set.
    """
    runs = {name: ProductRun() for name in products}
    _warm_up(products, group_photos[0].path.read_bytes())
    for position, photo in enumerate(group_photos):
        photo_bytes = photo.path.read_bytes()
        order = PRODUCTS if position % 2 == 0 else PRODUCTS[::-1]
        answers = {name: _timed(products[name], photo_bytes) for name in order}
        if any(answer is None for answer in answers.values()):
            logger.warning("photo left out of the comparison", extra={"photo": str(photo.path)})
            continue
        for name, answer in answers.items():
            assert answer is not None
            result, wall_s, cpu_s = answer
            runs[name].scores.append(score_photo(photo.labelled, result))
            runs[name].labelled_faces_detected += _labelled_faces_detected(photo, result)
            runs[name].wall_s.append(wall_s)
            runs[name].cpu_s.append(cpu_s)
        logger.info("group photo done", extra={"position": position, "photo": photo.path.name})

    for path in stranger_photos:
        photo_bytes = path.read_bytes()
        for name, identify in products.items():
            answer = _timed(identify, photo_bytes)
            if answer is not None:
                _count_strangers(runs[name], answer[0])
    return runs


def build_report(
    args: argparse.Namespace,
    runs: dict[str, ProductRun],
    peer_report: PeerTrainingReport,
    group_photos: list[GroupPhoto],
    stranger_photos: list[Path],
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    """Gather the machine, the data, each product's figures and the memberlens/peer ratios."""
    figures = {name: _figures(run) for name, run in runs.items()}
    ratios = {
        metric: _ratio(figures["memberlens"][metric], figures["peer"][metric])
        for metric in figures["memberlens"]
        if isinstance(figures["memberlens"][metric], int | float)
    }
    return {
        "command": " ".join(sys.argv),
        "machine": _machine(args.threads, load_before),
        "data": {
            "prepared": str(args.prepared.resolve()),
            "bundle": str(args.bundle.resolve()),
            "group_photos": {"split": args.split, "photos": len(group_photos)},
            "stranger_photos": {"split": args.stranger_split, "photos": len(stranger_photos)},
        },
        "peer_training": vars(peer_report),
        "figures": figures,
        "ratios_memberlens_over_peer": ratios,
        "summaries": {name: summarise_scores(run.scores) for name, run in runs.items()},
    }


def format_table(report: dict[str, Any]) -> str:
    """Render the report as a plain-text table, one row per figure."""
    machine = report["machine"]
    data = report["data"]
    peer = report["peer_training"]
    lines = [
        f"machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
        f"({machine['usable_cores']} usable), threads pinned to {machine['threads']}, "
        f"load average {machine['load_average_before'][0]:.2f} before, "
        f"{machine['load_average_after'][0]:.2f} after",
        f"data: {data['group_photos']['photos']} {data['group_photos']['split']} group photos, "
        f"{data['stranger_photos']['photos']} {data['stranger_photos']['split']} stranger photos "
        f"of {data['prepared']}; bundle {data['bundle']}",
        f"peer: HOG + dlib descriptors + k-NN, k={peer['k']}, tolerance={peer['tolerance']} "
        f"({peer['tuning'].get('chosen_by')}), {peer['faces_detected_and_matched']} training "
        f"faces from {peer['train_photos']} train photos, trained in {peer['seconds']} s",
        "",
        f"{'figure':<44}{'memberlens':>12}{'peer':>12}{'ratio m/p':>12}",
    ]
    for metric, label in _TABLE_ROWS:
        values = [report["figures"][name][metric] for name in PRODUCTS]
        ratio = report["ratios_memberlens_over_peer"].get(metric)
        lines.append(f"{label:<44}{_cell(values[0])}{_cell(values[1])}{_cell(ratio)}")
    return "\n".join(lines) + "\n"


_TABLE_ROWS = (
    ("per_face_accuracy", "per-face accuracy (missed face = wrong)"),
    ("member_set_f1", "member-set F1 (mean per photo)"),
    ("exact_set_rate", "exact-set rate"),
    ("strangers_named", "strangers named (share of detected faces)"),
    ("wall_s_median", "time per group photo, median (s, wall)"),
    ("wall_s_mean", "time per group photo, mean (s, wall)"),
    ("cpu_s_median", "CPU time per group photo, median (s)"),
    ("cores_busy", "cores busy while answering (CPU / wall)"),
    ("labelled_faces_detected_share", "labelled faces detected"),
    ("labelled_faces", "labelled faces"),
    ("stranger_faces", "stranger faces detected"),
)


def _load_products(args: argparse.Namespace) -> tuple[dict[str, Identify], PeerTrainingReport]:
    pipeline = load_pipeline(
        args.bundle,
        max_upload_bytes=NO_BYTE_LIMIT,
        max_pixels=args.max_pixels,
        torch_threads=args.threads,
    )
    peer, peer_report = train_peer(
        args.prepared,
        k=args.peer_k,
        tolerance=args.peer_tolerance,
        tuning_stranger_photos=args.tuning_strangers,
    )
    return {"memberlens": pipeline.identify, "peer": peer.identify}, peer_report


def _warm_up(products: dict[str, Identify], photo_bytes: bytes) -> None:
    """Answer one photo with each product untimed, so first-call set-up costs are not timed."""
    for identify in products.values():
        identify(photo_bytes)


def _timed(identify: Identify, photo_bytes: bytes) -> tuple[IdentifyResult, float, float] | None:
    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        result = identify(photo_bytes)
    except MemberlensError:
        logger.warning("photo refused", exc_info=True)
        return None
    return result, time.perf_counter() - wall_started, time.process_time() - cpu_started


def _labelled_faces_detected(photo: GroupPhoto, result: IdentifyResult) -> int:
    detections = [
        (face["box"]["x_min"], face["box"]["y_min"], face["box"]["x_max"], face["box"]["y_max"])
        for face in result["faces"]
    ]
    return len(match_faces([face.box for face in photo.labelled], detections).matches)


def _count_strangers(run: ProductRun, result: IdentifyResult) -> None:
    run.stranger_faces += len(result["faces"])
    for face in result["faces"]:
        member = face["member"]
        if member is not None:
            run.stranger_faces_named += 1
            run.stranger_named_as[member] = run.stranger_named_as.get(member, 0) + 1


def _figures(run: ProductRun) -> dict[str, Any]:
    summary = summarise_scores(run.scores)
    labelled = summary.get("labelled_faces", 0)
    return {
        "photos": len(run.scores),
        "per_face_accuracy": summary.get("per_face_accuracy"),
        "member_set_f1": summary.get("member_set", {}).get("f1"),
        "member_set_micro_f1": summary.get("member_set", {}).get("micro_f1"),
        "exact_set_rate": summary.get("exact_set_rate"),
        "strangers_named": round(run.stranger_faces_named / run.stranger_faces, 4)
        if run.stranger_faces
        else None,
        "stranger_faces": run.stranger_faces,
        "stranger_faces_named": run.stranger_faces_named,
        "stranger_named_as": run.stranger_named_as,
        "wall_s_median": _rounded(statistics.median, run.wall_s),
        "wall_s_mean": _rounded(statistics.fmean, run.wall_s),
        "cpu_s_median": _rounded(statistics.median, run.cpu_s),
        "cores_busy": round(sum(run.cpu_s) / sum(run.wall_s), 2) if run.wall_s else None,
        "labelled_faces": labelled,
        "labelled_faces_detected": run.labelled_faces_detected,
        "labelled_faces_detected_share": round(run.labelled_faces_detected / labelled, 4)
        if labelled
        else None,
        "wall_s_per_photo": [round(seconds, 4) for seconds in run.wall_s],
    }


def _rounded(statistic: Callable[[list[float]], float], values: list[float]) -> float | None:
    return round(statistic(values), 4) if values else None


def _ratio(memberlens: float | None, peer: float | None) -> float | None:
    if memberlens is None or peer is None or peer == 0:
        return None
    return round(memberlens / peer, 3)


def _cell(value: float | None) -> str:
    if value is None:
        return f"{'n/a':>12}"
    if isinstance(value, int):
        return f"{value:>12d}"
    return f"{value:>12.4f}"


def _machine(threads: int, load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_before": [round(load, 2) for load in load_before],
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="memberlens bundle folder")
    parser.add_argument("--prepared", type=Path, required=True, help="`memberlens prepare` output")
    parser.add_argument("--threads", type=int, default=1, help="threads for both products")
    parser.add_argument("--limit", type=int, default=0, help="first N group photos (0 = all)")
    parser.add_argument(
        "--limit-strangers",
        type=int,
        default=0,
        help="N stranger photos spread over the people (0 = all)",
    )
    parser.add_argument("--split", default="valid", help="split of the group photos")
    parser.add_argument("--stranger-split", default="test", help="split of the stranger photos")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument("--peer-k", type=int, default=None, help="skip tuning when given")
    parser.add_argument("--peer-tolerance", type=float, default=None, help="with --peer-k")
    parser.add_argument(
        "--tuning-strangers",
        type=int,
        default=DEFAULT_TUNING_STRANGER_PHOTOS,
        help="train-split stranger photos used to tune the peer",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


if __name__ == "__main__":
    main()
