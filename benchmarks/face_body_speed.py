"""Time the PyTorch face body against dlib's own descriptor on one CPU thread, on real chips.

Run: python benchmarks/face_body_speed.py [--lfw-dir DIR] [--batch-size 32] [--repeats 5]
Needs the test dependency dlib-bin (for the reference and for making aligned chips). Writes a
small report to stdout: time per chip for both, their ratio, and how close the descriptors are.
"""

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from model.face_body import DlibFaceBody, chips_to_tensor, default_weights_path, load_dlib_face_body

logger = logging.getLogger(__name__)

DEFAULT_LFW_DIR = Path("/work/shared/datasets/strangers/lfw")
CHIP_SIZE_PX = 150
CHIP_PADDING = 0.25


@dataclass(frozen=True)
class Timing:
    """Median wall and CPU time per chip over the repeats, in milliseconds."""

    wall_ms: float
    cpu_ms: float


def main() -> None:
    """Make chips, time both implementations, compare descriptors, write the report."""
    logging.basicConfig(level=logging.INFO)
    args = _parse_args()
    torch.set_num_threads(1)
    chips = make_chips(args.lfw_dir, args.batch_size)
    body = load_dlib_face_body().eval()
    recognizer = dlib.face_recognition_model_v1(str(default_weights_path()))

    port_timing = time_per_chip(lambda: _port_descriptors(body, chips), len(chips), args.repeats)
    dlib_timing = time_per_chip(
        lambda: _dlib_descriptors_one_by_one(recognizer, chips), len(chips), args.repeats
    )
    cosines = _cosines(
        _port_descriptors(body, chips), _dlib_descriptors_one_by_one(recognizer, chips)
    )

    sys.stdout.write(_report(len(chips), args.repeats, port_timing, dlib_timing, cosines))


def make_chips(lfw_dir: Path, count: int) -> NDArray[np.uint8]:
    """Align `count` faces from LFW photos with dlib's detector and 5-point landmarks.

    Returns:
        uint8 (count, 150, 150, 3) RGB chips, taken round-robin over the people.
    """
    models_dir = default_weights_path().parent
    detector = dlib.get_frontal_face_detector()
    landmarker = dlib.shape_predictor(str(models_dir / "shape_predictor_5_face_landmarks.dat"))
    photo_lists = [sorted(person.glob("*.jpg")) for person in sorted(lfw_dir.iterdir())]
    chips: list[NDArray[np.uint8]] = []
    for index in range(max(len(photos) for photos in photo_lists)):
        for photos in photo_lists:
            if index < len(photos) and len(chips) < count:
                chip = _aligned_chip(photos[index], detector, landmarker)
                if chip is not None:
                    chips.append(chip)
    return np.stack(chips)


def time_per_chip(run: Callable[[], object], chip_count: int, repeats: int) -> Timing:
    """Run once to warm up, then `repeats` times; return the median time per chip."""
    run()
    wall_s: list[float] = []
    cpu_s: list[float] = []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        run()
        wall_s.append(time.perf_counter() - wall_start)
        cpu_s.append(time.process_time() - cpu_start)
    return Timing(
        wall_ms=1000 * statistics.median(wall_s) / chip_count,
        cpu_ms=1000 * statistics.median(cpu_s) / chip_count,
    )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw-dir", type=Path, default=DEFAULT_LFW_DIR)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def _aligned_chip(
    path: Path, detector: dlib.fhog_object_detector, landmarker: dlib.shape_predictor
) -> NDArray[np.uint8] | None:
    photo = np.asarray(Image.open(path).convert("RGB"))
    boxes = detector(photo, 1)
    if len(boxes) == 0:
        logger.warning("no face found, photo skipped", extra={"photo": path.name})
        return None
    centre = np.array(photo.shape[1::-1]) / 2
    box = min(boxes, key=lambda b: float(np.linalg.norm([b.center().x, b.center().y] - centre)))
    chip = dlib.get_face_chip(
        photo, landmarker(photo, box), size=CHIP_SIZE_PX, padding=CHIP_PADDING
    )
    return np.asarray(chip, dtype=np.uint8)


def _port_descriptors(body: DlibFaceBody, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
    with torch.inference_mode():
        descriptors: NDArray[np.float32] = body(chips_to_tensor(chips)).numpy()
    return descriptors


def _dlib_descriptors_one_by_one(
    recognizer: dlib.face_recognition_model_v1, chips: NDArray[np.uint8]
) -> NDArray[np.float64]:
    return np.array([recognizer.compute_face_descriptor(chip) for chip in chips])


def _cosines(first: NDArray[np.floating], second: NDArray[np.floating]) -> NDArray[np.float64]:
    dots = np.sum(first * second, axis=1)
    cosines: NDArray[np.float64] = dots / (
        np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    )
    return cosines


def _report(
    chip_count: int, repeats: int, port: Timing, reference: Timing, cosines: NDArray[np.float64]
) -> str:
    return (
        f"chips: {chip_count} dlib-aligned LFW faces, median of {repeats} runs, "
        f"torch threads: {torch.get_num_threads()}\n"
        f"port  (one batch of {chip_count}):  {port.wall_ms:7.2f} ms/chip wall, "
        f"{port.cpu_ms:7.2f} ms/chip cpu\n"
        f"dlib  (compute_face_descriptor per chip): {reference.wall_ms:7.2f} ms/chip wall, "
        f"{reference.cpu_ms:7.2f} ms/chip cpu\n"
        f"ratio dlib/port (wall): {reference.wall_ms / port.wall_ms:.2f}\n"
        f"cosine port vs dlib: min {cosines.min():.7f}, mean {cosines.mean():.7f}\n"
    )


if __name__ == "__main__":
    main()
