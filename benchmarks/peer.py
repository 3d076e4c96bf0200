"""Run the face_recognition library's k-NN recipe as a peer product that answers as memberlens does.

dlib's HOG detector finds the faces, dlib's ResNet descriptor describes them, and a vote of the
k nearest training faces names them; a face farther than the tolerance from every known face is
nobody. Needs the optional extra `peer`; memberlens itself never imports this module.
"""

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from data_tools.errors import DatasetError, InvalidPhotoError, MemberlensError
from data_tools.matching import match_faces
from model.data import FACES_FILE, PHOTOS_FILE, TRAIN
from model.evaluate import LabelledFace
from model.results import (
    BoxDict,
    CandidateDict,
    FaceDict,
    IdentifyResult,
    MemberDict,
    ModelInfoDict,
)

logger = logging.getLogger(__name__)

# The library's own defaults: its usual match tolerance, and HOG at its default upsampling.
LIBRARY_TOLERANCE = 0.6
DETECTION_MODEL = "hog"
# Grids searched on the train split only; the library's tolerance sits inside the second one.
K_GRID = (1, 3, 5, 7, 11, 15, 21, 31)
TOLERANCE_GRID = tuple(round(0.30 + 0.025 * step, 3) for step in range(21))  # 0.30 to 0.80
CANDIDATES_PER_FACE = 3
DEFAULT_TUNING_STRANGER_PHOTOS = 300
# Guards 1 / distance when a face repeats a training face exactly.
_MIN_DISTANCE = 1e-6


@dataclass(frozen=True)
class GroupPhoto:
    """A group photo of a prepared folder with its hand-labelled faces."""

    path: Path
    group_key: str
    labelled: list[LabelledFace]


@dataclass(frozen=True)
class KnownFaces:
    """The training faces of the k-NN: descriptors, members and the shot each face comes from.

    Attributes:
        encodings: (n_faces, 128) float64 dlib descriptors.
        members: the member of each face.
        group_keys: the shot of each face; near-duplicate photos share one key.
    """

    encodings: NDArray[np.float64]
    members: list[str]
    group_keys: list[str]


@dataclass(frozen=True)
class KnnDecision:
    """Who one face is, by the vote of its nearest training faces.

    Attributes:
        member: the winning member, or `None` when the nearest known face is beyond the tolerance.
        nearest_distance: Euclidean distance to the nearest known face.
        vote_shares: each voted member's share of the distance-weighted vote, in [0, 1].
    """

    member: str | None
    nearest_distance: float
    vote_shares: dict[str, float]


@dataclass(frozen=True)
class TuningResult:
    """The k and tolerance chosen by leave-one-shot-out on the train split, and why."""

    k: int
    tolerance: float
    member_accuracy: float
    stranger_refusal: float | None
    objective: str


@dataclass
class PeerTrainingReport:
    """What training the peer saw and chose, for the benchmark report."""

    train_photos: int = 0
    labelled_faces: int = 0
    faces_detected_and_matched: int = 0
    tuning_stranger_photos: int = 0
    tuning_stranger_faces: int = 0
    k: int = 0
    tolerance: float = LIBRARY_TOLERANCE
    tuning: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def decide_members(
    known: KnownFaces, encodings: NDArray[np.float64], *, k: int, tolerance: float
) -> list[KnnDecision]:
    """Name each face by a distance-weighted vote of its k nearest training faces.

    As in the library's k-NN recipe, the vote decides who a face is and the single nearest
    training face decides whether it is anyone: beyond `tolerance`, the face is nobody.

    Args:
        known: the training faces.
        encodings: (n_faces, 128) descriptors of the faces to name.
        k: how many nearest training faces vote; capped at the number of training faces.
        tolerance: the largest Euclidean distance to the nearest known face that still names it.
    """
    if not known.members:
        return [KnnDecision(None, float("inf"), {}) for _ in range(len(encodings))]
    roster = sorted(set(known.members))
    votes, nearest_distances = _votes(_distances(encodings, known.encodings), known.members, k)
    decisions = []
    for face_votes, nearest_distance in zip(votes, nearest_distances, strict=True):
        shares = face_votes / face_votes.sum()
        winner = roster[int(np.argmax(face_votes))]
        decisions.append(
            KnnDecision(
                member=winner if nearest_distance <= tolerance else None,
                nearest_distance=float(nearest_distance),
                vote_shares={
                    member: float(share)
                    for member, share in zip(roster, shares, strict=True)
                    if share > 0
                },
            )
        )
    return decisions


def choose_k_and_tolerance(
    known: KnownFaces, stranger_encodings: NDArray[np.float64]
) -> TuningResult:
    """Choose k and the tolerance by leaving out one shot at a time, on training faces only.

    Each member face is named by the faces of the other shots; each stranger face by all of them
    (strangers are never training faces of the k-NN). The objective is the balanced accuracy:
    the mean of the share of member faces named right and the share of stranger faces refused.
    Without strangers it is the member accuracy alone. Ties go to the smaller k, then to the
    tolerance nearest the library's.
    """
    members = np.asarray(known.members)
    groups = np.asarray(known.group_keys)
    member_distances = _distances(known.encodings, known.encodings)
    member_distances[groups[:, None] == groups[None, :]] = np.inf  # leave the whole shot out
    stranger_distances = _distances(stranger_encodings, known.encodings)
    best: tuple[float, int, float, float, float | None] | None = None
    roster = np.asarray(sorted(set(known.members)))
    for k in K_GRID:
        member_votes, member_nearest = _votes(member_distances, known.members, k)
        _, stranger_nearest = _votes(stranger_distances, known.members, k)
        member_winners = roster[np.argmax(member_votes, axis=1)]
        is_right = member_winners == members
        for tolerance in TOLERANCE_GRID:
            accuracy = float(np.mean(is_right & (member_nearest <= tolerance)))
            refusal = (
                float(np.mean(stranger_nearest > tolerance)) if len(stranger_nearest) else None
            )
            objective = accuracy if refusal is None else (accuracy + refusal) / 2
            key = (objective, -k, -abs(tolerance - LIBRARY_TOLERANCE))
            if best is None or key > (best[0], -best[1], -abs(best[2] - LIBRARY_TOLERANCE)):
                best = (objective, k, tolerance, accuracy, refusal)
    if best is None:
        raise DatasetError("no training face to tune the peer's k and tolerance on")
    _, k, tolerance, accuracy, refusal = best
    return TuningResult(
        k=k,
        tolerance=tolerance,
        member_accuracy=round(accuracy, 4),
        stranger_refusal=None if refusal is None else round(refusal, 4),
        objective="balanced accuracy" if refusal is not None else "member accuracy",
    )


class PeerIdentifier:
    """The k-NN recipe behind the same `identify(photo_bytes)` call as memberlens's pipeline."""

    def __init__(self, known: KnownFaces, *, k: int, tolerance: float) -> None:
        """Name faces against `known` with `k` voters and the given tolerance."""
        self.known = known
        self.k = k
        self.tolerance = tolerance
        self._face_recognition = import_face_recognition()

    @property
    def model_info(self) -> ModelInfoDict:
        """Name the recipe and its settings, in the place of memberlens's bundle and thresholds."""
        return {
            "bundle": f"face_recognition-knn ({len(self.known.members)} faces)",
            "thresholds": f"k={self.k} tolerance={self.tolerance}",
        }

    def identify(self, photo_bytes: bytes) -> IdentifyResult:
        """Decode one photo, find its faces with HOG and name them by k-NN.

        The answer has memberlens's shape: a HOG detection has no confidence or five landmarks,
        so `detection_score` is 1.0 and `landmarks` is empty; a face's score is its vote share.

        Raises:
            InvalidPhotoError: the bytes are not a readable image.
        """
        started = time.perf_counter()
        photo = decode_photo_bytes(photo_bytes)
        timings = {"decode": _elapsed_ms(started)}

        step = time.perf_counter()
        boxes = detect_boxes(self._face_recognition, photo)
        timings["detect"] = _elapsed_ms(step)

        step = time.perf_counter()
        encodings = encode_boxes(self._face_recognition, photo, boxes)
        decisions = decide_members(self.known, encodings, k=self.k, tolerance=self.tolerance)
        timings["faces"] = _elapsed_ms(step)

        height, width = photo.shape[:2]
        faces = [
            _face_result(box, decision) for box, decision in zip(boxes, decisions, strict=True)
        ]
        timings["total"] = _elapsed_ms(started)
        return {
            "image": {"width": int(width), "height": int(height)},
            "members": _members_of(faces),
            "faces": faces,
            "image_scores": {},
            "model": self.model_info,
            "timings_ms": timings,
        }


def train_peer(
    prepared_dir: Path,
    *,
    k: int | None = None,
    tolerance: float | None = None,
    tuning_stranger_photos: int = DEFAULT_TUNING_STRANGER_PHOTOS,
) -> tuple[PeerIdentifier, PeerTrainingReport]:
    """Learn the peer's training faces from the train split, then set k and the tolerance.

    Training faces are the HOG detections of train-split group photos that match a labelled box.
    When `k` or `tolerance` is not given, both are chosen on the train split by
    `choose_k_and_tolerance`, with up to `tuning_stranger_photos` train-split stranger photos.

    Raises:
        DatasetError: the prepared folder lacks its files, or no training face was found.
    """
    face_recognition = import_face_recognition()
    started = time.perf_counter()
    report = PeerTrainingReport()
    photos = read_group_photos(prepared_dir, TRAIN)
    known = _known_faces(face_recognition, photos, report)
    if not known.members:
        raise DatasetError(f"HOG found no labelled face in the {TRAIN} photos of {prepared_dir}")

    if k is not None and tolerance is not None:
        report.k, report.tolerance = k, tolerance
        report.tuning = {"chosen_by": "given"}
    else:
        stranger_paths = spread_evenly(
            read_stranger_photos(prepared_dir, TRAIN), tuning_stranger_photos
        )
        strangers = _stranger_encodings(face_recognition, stranger_paths)
        report.tuning_stranger_photos = len(stranger_paths)
        report.tuning_stranger_faces = len(strangers)
        tuning = choose_k_and_tolerance(known, strangers)
        report.tuning = {"chosen_by": "leave one shot out on the train split", **vars(tuning)}
        report.k = tuning.k if k is None else k
        report.tolerance = tuning.tolerance if tolerance is None else tolerance
    report.seconds = round(time.perf_counter() - started, 1)
    logger.info("peer trained", extra={"report": vars(report)})
    return PeerIdentifier(known, k=report.k, tolerance=report.tolerance), report


def read_group_photos(prepared_dir: Path, split: str) -> list[GroupPhoto]:
    """Read one split's group photos and their labelled boxes from `photos.csv`.

    Raises:
        DatasetError: the file is missing or the split has no photo.
    """
    path = prepared_dir / PHOTOS_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens prepare --out {prepared_dir}`")
    photos = pd.read_csv(path, keep_default_na=False, dtype=str)
    chosen = photos[photos["split"] == split]
    if chosen.empty:
        raise DatasetError(f"{path} has no group photo in split {split!r}")
    return [
        GroupPhoto(
            path=Path(row["photo"]),
            group_key=row["group_key"],
            labelled=[
                LabelledFace(
                    box["member"], (box["x_min"], box["y_min"], box["x_max"], box["y_max"])
                )
                for box in json.loads(row["boxes"])
            ],
        )
        for _, row in chosen.iterrows()
    ]


def read_stranger_photos(prepared_dir: Path, split: str) -> list[Path]:
    """Return the distinct stranger photos of one split of `faces.csv`, in file order.

    Raises:
        DatasetError: the file is missing.
    """
    path = prepared_dir / FACES_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens prepare --out {prepared_dir}`")
    faces = pd.read_csv(path, keep_default_na=False, dtype=str)
    strangers = faces[(faces["source"] == "stranger") & (faces["split"] == split)]
    return [Path(photo) for photo in dict.fromkeys(strangers["photo"])]


def spread_evenly(paths: list[Path], limit: int) -> list[Path]:
    """Take up to `limit` paths spread evenly over the list, so that every person is represented.

    A `limit` of 0 or less takes them all.
    """
    if limit <= 0 or len(paths) <= limit:
        return paths
    step = len(paths) / limit
    return [paths[int(position * step)] for position in range(limit)]


def decode_photo_bytes(photo_bytes: bytes) -> NDArray[np.uint8]:
    """Decode bytes into an upright (H, W, 3) RGB photo, as a plain Pillow user would.

    Raises:
        InvalidPhotoError: the bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(photo_bytes)) as image:
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise InvalidPhotoError("expected a readable image; Pillow could not decode it") from err


def detect_boxes(
    face_recognition: ModuleType, photo: NDArray[np.uint8]
) -> list[tuple[int, int, int, int]]:
    """Find faces with HOG at the library's default upsampling.

    Returns:
        (x_min, y_min, x_max, y_max) boxes in photo pixels, as the library clips them.
    """
    locations = face_recognition.face_locations(photo, model=DETECTION_MODEL)
    return [(left, top, right, bottom) for top, right, bottom, left in locations]


def encode_boxes(
    face_recognition: ModuleType,
    photo: NDArray[np.uint8],
    boxes: Sequence[tuple[int, int, int, int]],
) -> NDArray[np.float64]:
    """Describe each boxed face with the library's defaults (68 landmarks, one jitter).

    Returns:
        (n_boxes, 128) float64 descriptors.
    """
    if not boxes:
        return np.zeros((0, 128), dtype=np.float64)
    locations = [(y_min, x_max, y_max, x_min) for x_min, y_min, x_max, y_max in boxes]
    encodings = face_recognition.face_encodings(photo, known_face_locations=locations)
    return np.asarray(encodings, dtype=np.float64).reshape(-1, 128)


def import_face_recognition() -> ModuleType:
    """Import the face_recognition library, or say how to install it.

    Imported on first use rather than at the top, so that the k-NN logic and its tests run where
    the optional extra is not installed.

    Raises:
        MemberlensError: the library is not installed.
    """
    # Importing the library sets Pillow's process-wide LOAD_TRUNCATED_IMAGES, which would make
    # memberlens accept truncated photos in the same process; the flag is put back at once.
    accepts_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        import face_recognition as library
    except ImportError as err:
        raise MemberlensError(
            "the peer needs face_recognition; install the extra: pip install -e '.[peer]' and "
            "then pip install --no-deps face_recognition==1.3.0"
        ) from err
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = accepts_truncated
    module: ModuleType = library
    return module


def _known_faces(
    face_recognition: ModuleType, photos: list[GroupPhoto], report: PeerTrainingReport
) -> KnownFaces:
    encodings: list[NDArray[np.float64]] = []
    members: list[str] = []
    group_keys: list[str] = []
    for photo_record in photos:
        photo = decode_photo_bytes(photo_record.path.read_bytes())
        boxes = detect_boxes(face_recognition, photo)
        matching = match_faces([face.box for face in photo_record.labelled], boxes)
        matched_boxes = [boxes[match.detection_index] for match in matching.matches]
        encodings.append(encode_boxes(face_recognition, photo, matched_boxes))
        members += [
            photo_record.labelled[match.labelled_index].member for match in matching.matches
        ]
        group_keys += [photo_record.group_key] * len(matching.matches)
        report.train_photos += 1
        report.labelled_faces += len(photo_record.labelled)
        report.faces_detected_and_matched += len(matching.matches)
    stacked = np.concatenate(encodings) if encodings else np.zeros((0, 128), dtype=np.float64)
    return KnownFaces(stacked, members, group_keys)


def _stranger_encodings(face_recognition: ModuleType, paths: list[Path]) -> NDArray[np.float64]:
    encodings = [np.zeros((0, 128), dtype=np.float64)]
    for path in paths:
        photo = decode_photo_bytes(path.read_bytes())
        encodings.append(
            encode_boxes(face_recognition, photo, detect_boxes(face_recognition, photo))
        )
    return np.concatenate(encodings)


def _distances(encodings: NDArray[np.float64], known: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return (n_faces, n_known) Euclidean distances, the library's `face_distance` measure."""
    squared = (
        np.sum(encodings**2, axis=1)[:, None]
        + np.sum(known**2, axis=1)[None, :]
        - 2.0 * encodings @ known.T
    )
    distances: NDArray[np.float64] = np.sqrt(np.clip(squared, 0.0, None))
    return distances


def _votes(
    distances: NDArray[np.float64], members: list[str], k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Weigh the k nearest known faces of each row by 1 / distance; infinite ones never vote.

    Args:
        distances: (n_faces, n_known) distances to the known faces.
        members: the member of each known face.
        k: voters per face, capped at the number of known faces.

    Returns:
        (n_faces, n_members) votes in sorted member order, and (n_faces,) nearest distances.
    """
    roster = sorted(set(members))
    member_index = np.asarray([roster.index(member) for member in members], dtype=np.intp)
    votes = np.zeros((distances.shape[0], len(roster)), dtype=np.float64)
    if distances.shape[0] == 0 or distances.shape[1] == 0:
        return votes, np.full(distances.shape[0], np.inf)
    count = max(1, min(k, distances.shape[1]))
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :count]  # (n_faces, count)
    nearest_distances = np.take_along_axis(distances, nearest, axis=1)
    weights = np.where(
        np.isfinite(nearest_distances), 1.0 / np.maximum(nearest_distances, _MIN_DISTANCE), 0.0
    )
    rows = np.arange(distances.shape[0])[:, None]
    np.add.at(votes, (rows, member_index[nearest]), weights)
    return votes, nearest_distances[:, 0]


def _face_result(box: tuple[int, int, int, int], decision: KnnDecision) -> FaceDict:
    ranked = sorted(decision.vote_shares.items(), key=lambda item: item[1], reverse=True)
    candidates: list[CandidateDict] = [
        {"name": member, "score": round(share, 4)} for member, share in ranked[:CANDIDATES_PER_FACE]
    ]
    x_min, y_min, x_max, y_max = box
    face_box: BoxDict = {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max}
    return {
        "box": face_box,
        "detection_score": 1.0,
        "landmarks": [],
        "member": decision.member,
        "candidates": candidates,
    }


def _members_of(faces: list[FaceDict]) -> list[MemberDict]:
    """List each named member once, with the box of its highest-scoring face.

    The recipe names every face on its own, so two faces may get the same member.
    """
    best: dict[str, MemberDict] = {}
    for face in faces:
        member = face["member"]
        if member is None:
            continue
        score = face["candidates"][0]["score"]
        if member not in best or score > best[member]["score"]:
            best[member] = {"name": member, "score": score, "source": "face", "box": face["box"]}
    return sorted(best.values(), key=lambda entry: entry["score"], reverse=True)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
