"""Identify members in one photo: decode, detect, align, score faces, assign, build the answer."""

import logging
import math
import threading
import time
from pathlib import Path

import numpy as np
import torch
from data_tools.align import align_faces
from numpy.typing import NDArray

from data_tools.errors import BundleLoadError
from data_tools.faces import Face, FaceDetector, MtcnnDetector
from data_tools.photos import decode_photo
from model.assign import NOBODY, assign_members
from model.bundle import Bundle, load_bundle
from model.face_body import chips_to_tensor
from model.face_model import describe_crops
from model.results import (
    BoxDict,
    CandidateDict,
    FaceDict,
    IdentifyResult,
    MemberDict,
    ModelInfoDict,
)
from model.thresholds import THRESHOLDS_FILE, Thresholds, load_thresholds

logger = logging.getLogger(__name__)

CANDIDATES_PER_FACE = 3


class Pipeline:
    """The inference pipeline of one bundle; safe to call from several threads."""

    def __init__(
        self, bundle: Bundle, detector: FaceDetector, *, max_upload_bytes: int, max_pixels: int
    ) -> None:
        """Serve `bundle` with `detector`, refusing uploads over the given limits."""
        self.bundle = bundle
        self.detector = detector
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self._thresholds = bundle.thresholds
        self._thresholds_stamp = _stamp(bundle.path / THRESHOLDS_FILE)
        self._lock = threading.Lock()

    @property
    def model_info(self) -> ModelInfoDict:
        """Name the bundle and the thresholds the next answer will use."""
        return {"bundle": self.bundle.name, "thresholds": self.current_thresholds().digest()}

    def current_thresholds(self) -> Thresholds:
        """Return the bundle's thresholds, rereading the file when it has changed on disk.

        A file that fails to load keeps the previous thresholds in force and logs the error, so
        a bad edit never takes the service down.
        """
        path = self.bundle.path / THRESHOLDS_FILE
        stamp = _stamp(path)
        with self._lock:
            if stamp == self._thresholds_stamp:
                return self._thresholds
            try:
                thresholds = load_thresholds(self.bundle.path, self.bundle.roster)
            except BundleLoadError:
                logger.exception("thresholds reload failed; keeping the previous ones")
                self._thresholds_stamp = stamp
                return self._thresholds
            self._thresholds = thresholds
            self._thresholds_stamp = stamp
            logger.info("thresholds reloaded", extra={"thresholds": thresholds.digest()})
            return thresholds

    def identify(self, photo_bytes: bytes) -> IdentifyResult:
        """Decode one uploaded photo and name the members in it.

        Raises:
            InvalidPhotoError: the bytes are not a readable image.
            PhotoTooLargeError: the bytes or the pixels exceed the limits.
            UnsupportedPhotoTypeError: the bytes are another kind of file.
        """
        started = time.perf_counter()
        photo = decode_photo(
            photo_bytes, max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels
        )
        decode_ms = (time.perf_counter() - started) * 1000
        result = self.identify_photo(photo)
        result["timings_ms"] = {
            "decode": round(decode_ms, 1),
            **result["timings_ms"],
            "total": round((time.perf_counter() - started) * 1000, 1),
        }
        return result

    def identify_photo(self, photo: NDArray[np.uint8]) -> IdentifyResult:
        """Name the members in a decoded (H, W, 3) RGB photo."""
        thresholds = self.current_thresholds()
        roster = self.bundle.roster
        timings: dict[str, float] = {}

        started = time.perf_counter()
        faces = self.detector.detect(photo)
        timings["detect"] = _elapsed_ms(started)

        started = time.perf_counter()
        chips = align_faces(photo, faces)
        descriptors, probabilities = describe_crops(self.bundle.face_model, chips_to_tensor(chips))
        similarities = self.bundle.gallery.similarities(descriptors)
        eligible = thresholds.eligible(roster, probabilities, similarities)
        assigned = assign_members(probabilities, eligible)
        timings["faces"] = _elapsed_ms(started)

        height, width = photo.shape[:2]
        face_results = [
            _face_result(face, probabilities[index], int(assigned[index]), roster, width, height)
            for index, face in enumerate(faces)
        ]
        members: list[MemberDict] = [
            {
                "name": roster[member_index],
                "score": round(float(probabilities[face_index, member_index]), 4),
                "source": "face",
                "box": face_results[face_index]["box"],
            }
            for face_index, member_index in enumerate(assigned.tolist())
            if member_index != NOBODY
        ]
        members.sort(key=lambda entry: entry["score"], reverse=True)
        return {
            "image": {"width": int(width), "height": int(height)},
            "members": members,
            "faces": face_results,
            "image_scores": {},
            "model": {"bundle": self.bundle.name, "thresholds": thresholds.digest()},
            "timings_ms": timings,
        }


def load_pipeline(
    bundle_dir: Path, *, max_upload_bytes: int, max_pixels: int, torch_threads: int = 0
) -> Pipeline:
    """Load a bundle and its detector, ready to identify.

    Args:
        bundle_dir: the bundle folder.
        max_upload_bytes: uploads larger than this are refused.
        max_pixels: photos with more pixels than this are refused before decoding.
        torch_threads: threads for torch; 0 keeps torch's default (one per core).

    Raises:
        BundleLoadError: the bundle is missing or damaged.
    """
    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    bundle = load_bundle(bundle_dir)
    detector = MtcnnDetector()
    return Pipeline(bundle, detector, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)


def box_of(face: Face, width: int, height: int) -> BoxDict:
    """Return a face's box as whole pixels inside the photo, `x_max`/`y_max` exclusive."""
    x_min, y_min, x_max, y_max = face.box
    return {
        "x_min": max(0, min(width, math.floor(x_min))),
        "y_min": max(0, min(height, math.floor(y_min))),
        "x_max": max(0, min(width, math.ceil(x_max))),
        "y_max": max(0, min(height, math.ceil(y_max))),
    }


def _face_result(
    face: Face,
    probabilities: NDArray[np.float32],
    member_index: int,
    roster: list[str],
    width: int,
    height: int,
) -> FaceDict:
    order = np.argsort(-probabilities)[:CANDIDATES_PER_FACE]
    candidates: list[CandidateDict] = [
        {"name": roster[index], "score": round(float(probabilities[index]), 4)} for index in order
    ]
    return {
        "box": box_of(face, width, height),
        "detection_score": round(float(face.detection_score), 4),
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
        "member": roster[member_index] if member_index != NOBODY else None,
        "candidates": candidates,
    }


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
