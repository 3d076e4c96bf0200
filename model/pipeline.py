"""Identify members in one photo: decode, detect, align, score faces, assign, build the answer."""

import logging
import math
import threading
import time
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from data_tools.align import align_faces
from data_tools.errors import BundleLoadError, InvalidParameterError
from data_tools.faces import Face, FaceDetector, MtcnnDetector
from data_tools.photos import decode_photo
from model.assign import NOBODY
from model.bundle import Bundle, load_bundle
from model.face_body import chips_to_tensor
from model.face_model import describe_crops
from model.fusion import NEVER_IMAGE_CUT, fuse_members, lift_faces, rounded_probabilities
from model.naming import name_photo_faces
from model.results import (
    BoxDict,
    CandidateDict,
    FaceDict,
    IdentifyResult,
    MemberDict,
    ModelInfoDict,
)
from model.scene import score_photos
from model.thresholds import THRESHOLDS_FILE, Thresholds, load_thresholds

logger = logging.getLogger(__name__)

CANDIDATES_PER_FACE = 3


class Pipeline:
    """The inference pipeline of one bundle; safe to call from several threads."""

    def __init__(
        self,
        bundle: Bundle,
        detector: FaceDetector,
        *,
        max_upload_bytes: int,
        max_pixels: int,
        follow_thresholds_file: bool = True,
    ) -> None:
        """Serve `bundle` with `detector`, refusing uploads over the given limits.

        With `follow_thresholds_file` false the bundle's thresholds stay in force whatever
        happens to `thresholds.json`: tuning and evaluation run trial thresholds that way, so
        that a file rewritten during the run cannot mix two sets of cuts in one result.
        """
        self.bundle = bundle
        self.detector = detector
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.follow_thresholds_file = follow_thresholds_file
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
        if not self.follow_thresholds_file:
            return self._thresholds
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

    def identify(
        self,
        photo_bytes: bytes,
        *,
        min_face_size_px: int = 0,
        top_k: int = CANDIDATES_PER_FACE,
        return_landmarks: bool = True,
    ) -> IdentifyResult:
        """Decode one uploaded photo and name the members in it.

        The options are those of `identify_photo`.

        Raises:
            InvalidPhotoError: the bytes are not a readable image.
            PhotoTooLargeError: the bytes or the pixels exceed the limits.
            UnsupportedPhotoTypeError: the bytes are another kind of file.
            InvalidParameterError: an option is out of range.
        """
        _check_options(min_face_size_px, top_k)
        started = time.perf_counter()
        photo = decode_photo(
            photo_bytes, max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels
        )
        decode_ms = (time.perf_counter() - started) * 1000
        result = self.identify_photo(
            photo,
            min_face_size_px=min_face_size_px,
            top_k=top_k,
            return_landmarks=return_landmarks,
        )
        result["timings_ms"] = {
            "decode": round(decode_ms, 1),
            **result["timings_ms"],
            "total": round((time.perf_counter() - started) * 1000, 1),
        }
        return result

    def identify_photo(
        self,
        photo: NDArray[np.uint8],
        *,
        min_face_size_px: int = 0,
        top_k: int = CANDIDATES_PER_FACE,
        return_landmarks: bool = True,
    ) -> IdentifyResult:
        """Name the members in a decoded (H, W, 3) RGB photo.

        Args:
            photo: the upright RGB photo.
            min_face_size_px: faces whose box has a side shorter than this, in photo pixels,
                are left out; faces under the detector's own minimum are never found.
            top_k: how many candidates to list per face, best first (0 lists none).
            return_landmarks: whether each face carries its five landmarks.

        Raises:
            InvalidParameterError: an option is out of range.
        """
        _check_options(min_face_size_px, top_k)
        thresholds = self.current_thresholds()
        roster = self.bundle.roster
        timings: dict[str, float] = {}

        started = time.perf_counter()
        faces = [
            face
            for face in self.detector.detect(photo)
            if _shorter_side_px(face) >= min_face_size_px
        ]
        timings["detect"] = _elapsed_ms(started)

        started = time.perf_counter()
        chips = align_faces(photo, faces)
        timings["align"] = _elapsed_ms(started)

        started = time.perf_counter()
        descriptors, probabilities = describe_crops(self.bundle.face_model, chips_to_tensor(chips))
        similarities = self.bundle.gallery.similarities(descriptors)
        assigned = name_photo_faces(roster, probabilities, similarities, thresholds)
        timings["faces"] = _elapsed_ms(started)

        image_scores = self._image_scores(photo, timings)
        if image_scores and thresholds.lift is not None:
            assigned = lift_faces(
                rounded_probabilities(probabilities),
                assigned,
                np.array([image_scores[member] for member in roster], dtype=np.float32),
                np.array(
                    [thresholds.image.get(member, NEVER_IMAGE_CUT) for member in roster],
                    dtype=np.float32,
                ),
                thresholds.lift,
            )
        height, width = photo.shape[:2]
        face_results = [
            _face_result(
                face, probabilities[index], int(assigned[index]), roster, (width, height), top_k
            )
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
        members = fuse_members(
            members,
            image_scores,
            thresholds.image,
            detected_faces=len(faces),
            unnamed_faces=int((assigned == NOBODY).sum()),
        )
        if not return_landmarks:
            for face_result in face_results:
                del face_result["landmarks"]
        return {
            "image": {"width": int(width), "height": int(height)},
            "members": members,
            "faces": face_results,
            "image_scores": image_scores,
            "model": {"bundle": self.bundle.name, "thresholds": thresholds.digest()},
            "timings_ms": timings,
        }

    def _image_scores(
        self, photo: NDArray[np.uint8], timings: dict[str, float]
    ) -> dict[str, float]:
        """Score the whole photo with the scene model; empty for a bundle without one."""
        scene_model = self.bundle.scene_model
        if scene_model is None:
            return {}
        started = time.perf_counter()
        probabilities = score_photos(
            scene_model,
            [photo],
            size_px=self.bundle.scene_size_px,
            architecture=self.bundle.scene_architecture,
        )[0]
        timings["image"] = _elapsed_ms(started)
        return {
            member: round(float(probability), 4)
            for member, probability in zip(self.bundle.roster, probabilities, strict=True)
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
    size: tuple[int, int],
    top_k: int,
) -> FaceDict:
    width, height = size
    order = np.argsort(-probabilities)[:top_k]
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


def _check_options(min_face_size_px: int, top_k: int) -> None:
    if min_face_size_px < 0:
        raise InvalidParameterError(
            f"Expected min_face_size of 0 or more pixels, but got {min_face_size_px}; "
            "use 0 to keep every face the detector finds."
        )
    if top_k < 0:
        raise InvalidParameterError(
            f"Expected top_k of 0 or more candidates, but got {top_k}; use 3 for the usual list."
        )


def _shorter_side_px(face: Face) -> float:
    x_min, y_min, x_max, y_max = face.box
    return min(x_max - x_min, y_max - y_min)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
