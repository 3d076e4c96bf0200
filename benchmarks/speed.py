"""Time memberlens step by step on the real group photos, beside the face_recognition peer.

Run: python benchmarks/speed.py --bundle bundles/bts --prepared prepared/bts
         [--threads 1] [--limit N] [--repeats 1] [--out reports/speed.json]
Needs the optional extra `peer` (see compare_with_peer.py). Every group photo of the shared set
(all splits: speed does not depend on what the bundle trained on) is answered by both products
in the same process, one right after the other and alternating which goes first, so that a busy
machine slows both alike. memberlens runs at its service defaults; its steps are the pipeline's
own timings (decode, detect, align, faces, image). The peer's are decode, detect (dlib HOG) and
faces (68 landmarks, descriptor, k-NN). The ratio is the peer's time over memberlens's: 1.0 or
more means memberlens is at least as fast per photo. Per-face accuracy on the valid photos is
printed from the same run, to show that the speed costs no accuracy.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from peer import GroupPhoto, read_group_photos, train_peer
from threadpoolctl import threadpool_limits

from data_tools.errors import DatasetError
from model.data import TRAIN, VALID
from model.evaluate import score_photo, summarise_scores
from model.pipeline import load_pipeline
from model.results import IdentifyResult
from service.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("reports/speed.json")
MEMBERLENS_STEPS = ("decode", "detect", "align", "faces", "image")
PEER_STEPS = ("decode", "detect", "faces")
SPLITS = (TRAIN, VALID, "test")


def main() -> None:
    """Load both products, time them on the same photos, print the table, write the JSON."""
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    photos = _all_group_photos(args.prepared)[: args.limit or None]
    if not photos:
        raise SystemExit(f"no group photos in {args.prepared}; run `memberlens prepare` first")
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        settings = Settings()
        pipeline = load_pipeline(
            args.bundle,
            max_upload_bytes=settings.limits.max_upload_bytes,
            max_pixels=settings.limits.max_pixels,
            torch_threads=args.threads,
        )
        # The peer's k and tolerance do not change its speed; the library's own are used.
        peer, _ = train_peer(args.prepared, k=args.peer_k, tolerance=args.peer_tolerance)
        products = {"memberlens": pipeline.identify, "peer": peer.identify}
        timings = _time_both(products, photos, args.repeats)

    report = {
        "photos": len(photos),
        "repeats": args.repeats,
        "threads": args.threads,
        "cpu_model": _cpu_model(),
        "load_average_before": [round(load, 2) for load in load_before],
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
        "bundle": pipeline.bundle.name,
        "steps_ms": {name: _step_summary(steps) for name, steps in timings.items()},
        "valid_per_face_accuracy": _valid_accuracy(pipeline.identify, args.prepared),
    }
    report["speed_ratio_peer_over_memberlens"] = _ratios(report["steps_ms"])
    sys.stdout.write(format_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(f"figures written to {args.out}\n")


def _time_both(
    products: dict[str, Any], photos: list[GroupPhoto], repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Answer every photo with both products; return each product's step times in ms."""
    timings: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in products}
    names = list(products)
    first_bytes = photos[0].path.read_bytes()
    for identify in products.values():
        identify(first_bytes)  # untimed: first-call set-up
    for position in range(len(photos) * repeats):
        photo_bytes = photos[position % len(photos)].path.read_bytes()
        order = names if position % 2 == 0 else names[::-1]
        for name in order:
            started = time.perf_counter()
            result: IdentifyResult = products[name](photo_bytes)
            wall_ms = (time.perf_counter() - started) * 1000
            for step, milliseconds in result["timings_ms"].items():
                timings[name][step].append(milliseconds)
            timings[name]["wall"].append(wall_ms)
        if position % 20 == 0:
            logger.info("timed %d of %d photos", position + 1, len(photos) * repeats)
    return timings


def _step_summary(steps: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        step: {
            "mean": round(statistics.fmean(values), 1),
            "median": round(statistics.median(values), 1),
            "p95": round(statistics.quantiles(values, n=20)[18], 1) if len(values) > 1 else 0.0,
        }
        for step, values in steps.items()
    }


def _ratios(steps_ms: dict[str, dict[str, dict[str, float]]]) -> dict[str, float | None]:
    ours, peer = steps_ms["memberlens"], steps_ms["peer"]
    ratios: dict[str, float | None] = {}
    for statistic in ("mean", "median"):
        ours_ms = ours.get("wall", {}).get(statistic)
        ratios[statistic] = round(peer["wall"][statistic] / ours_ms, 2) if ours_ms else None
    return ratios


def _valid_accuracy(identify: Any, prepared: Path) -> float | None:
    try:
        valid = read_group_photos(prepared, VALID)
    except DatasetError:
        return None
    scores = [score_photo(photo.labelled, identify(photo.path.read_bytes())) for photo in valid]
    accuracy = summarise_scores(scores).get("per_face_accuracy")
    return None if accuracy is None else float(accuracy)


def format_table(report: dict[str, Any]) -> str:
    """Render the step table: mean (median) milliseconds per photo for each product."""
    ours, peer = report["steps_ms"]["memberlens"], report["steps_ms"]["peer"]

    def cell(steps: dict[str, dict[str, float]], step: str) -> str:
        if step not in steps:
            return f"{'-':>16}"
        return f"{steps[step]['mean']:>8.1f} ({steps[step]['median']:>5.0f})"

    rows = [
        f"{report['photos']} group photos x {report['repeats']}, {report['threads']} thread(s), "
        f"{report['cpu_model']}, load before {report['load_average_before'][0]}",
        f"{'step (ms, mean (median))':<26}{'memberlens':>16}{'peer':>16}",
    ]
    for step in ("decode", "detect", "align", "faces", "image", "total", "wall"):
        rows.append(f"{step:<26}{cell(ours, step)}{cell(peer, step)}")
    ratio = report["speed_ratio_peer_over_memberlens"]
    rows.append(
        f"speed ratio, peer time / memberlens time: mean {ratio['mean']}, median {ratio['median']}"
    )
    accuracy = report["valid_per_face_accuracy"]
    rows.append(f"memberlens per-face accuracy on the valid photos: {accuracy}")
    return "\n".join(rows) + "\n"


def _all_group_photos(prepared: Path) -> list[GroupPhoto]:
    photos: list[GroupPhoto] = []
    for split in SPLITS:
        try:
            photos += read_group_photos(prepared, split)
        except DatasetError:  # a split with no photo
            continue
    return sorted(photos, key=lambda photo: photo.path.name)


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="memberlens bundle folder")
    parser.add_argument("--prepared", type=Path, required=True, help="`memberlens prepare` output")
    parser.add_argument("--threads", type=int, default=1, help="threads for both products")
    parser.add_argument("--limit", type=int, default=0, help="first N photos by name (0 = all)")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the photos")
    parser.add_argument("--peer-k", type=int, default=1, help="peer's k (speed does not change)")
    parser.add_argument("--peer-tolerance", type=float, default=0.6, help="peer's tolerance")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    return args


if __name__ == "__main__":
    main()
