"""Label a checked collection: detect, align and describe every face, then propose labels.

`label_collection` reads `COLLECTION/photos/<member>/`, writes an aligned chip per face and
its descriptor, asks `data_tools.label_proposals` for labels and flags, and saves the result
as `COLLECTION/labelled/` (see `data_tools.labelled_set`). Photos labelled before and unchanged
since are not detected again, and review decisions on their faces are kept.
"""

import hashlib
import io
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from data_tools.align import align_faces
from data_tools.atomic import write_bytes_atomic
from data_tools.collect_journal import PHOTOS_DIR
from data_tools.duplicates import group_duplicates, split_groups
from data_tools.errors import DatasetError, MemberlensError
from data_tools.faces import Face, FaceDetector
from data_tools.label_proposals import (
    FaceDescriber,
    FaceVerdict,
    PhotoFaces,
    ProposalOptions,
    propose_labels,
    unit_rows,
)
from data_tools.labelled_set import (
    LABELLED_DIR,
    PROPOSALS_FILE,
    FaceRecord,
    LabelledSet,
    face_id_of,
    training_labels,
)
from data_tools.photos import load_photo
from data_tools.prepare import CHIPS_FOLDER
from data_tools.roster import Roster

logger = logging.getLogger(__name__)

DESCRIPTORS_FILE = "descriptors.npz"


@dataclass(frozen=True)
class LabelOptions:
    """How to read photos and split them, and when to flag a face."""

    max_photo_bytes: int = 50 * 1024 * 1024
    max_photo_pixels: int = 50_000_000
    seed: int = 0
    valid_share: float = 0.2
    proposals: ProposalOptions = field(default_factory=ProposalOptions)


def label_collection(
    collection: Path,
    roster: Roster,
    detector: FaceDetector,
    describer: FaceDescriber,
    options: LabelOptions,
) -> LabelledSet:
    """Detect, align and describe every collected face, propose labels and write the set.

    Photos labelled before and unchanged since are not detected again, and the review
    decisions on their faces are kept.

    Raises:
        DatasetError: the collection has no `photos/` folder, or no photo of a roster member.
    """
    photo_paths = _member_photos(collection, roster)
    previous = _previous_faces(collection)
    cache = _DescriptorCache.load(collection / LABELLED_DIR / DESCRIPTORS_FILE)
    chips_dir = collection / LABELLED_DIR / CHIPS_FOLDER
    chips_dir.mkdir(parents=True, exist_ok=True)

    photo_faces: list[PhotoFaces] = []
    digests: dict[str, str] = {}
    for number, (relative, member) in enumerate(photo_paths, start=1):
        digests[relative] = _sha256_of(collection / relative)
        cached = _cached_faces(previous.get(relative), digests[relative], cache)
        if cached is None:
            cached = _detect_and_describe(
                collection, relative, detector, describer, chips_dir, options
            )
        faces, descriptors = cached
        cache.put([face_id_of(relative, index) for index in range(len(faces))], descriptors)
        photo_faces.append(PhotoFaces(relative, member, faces, descriptors))
        if number % 25 == 0 or number == len(photo_paths):
            logger.info("photos labelled", extra={"done": number, "total": len(photo_paths)})

    verdicts = propose_labels(photo_faces, options.proposals)
    splits = _splits(collection, [photo.photo for photo in photo_faces], options)
    records = _records(photo_faces, verdicts, digests, splits, previous)
    empty_photos = {photo.photo: digests[photo.photo] for photo in photo_faces if not photo.faces}
    labelled = LabelledSet(collection, roster.slugs, records, empty_photos)
    labelled.save()
    cache.keep_only([record["face_id"] for record in records])
    cache.save(collection / LABELLED_DIR / DESCRIPTORS_FILE)
    _remove_stale_chips(chips_dir, {record["chip"] for record in records})
    return labelled


def summarise_labels(labelled: LabelledSet) -> str:
    """Return a few readable lines: photos, faces, proposals, flags, and what trains."""
    proposals = [face for face in labelled.faces if face["proposed"]]
    flags = Counter(flag for face in proposals for flag in face["flags"])
    trains = sum(1 for face in labelled.faces if training_labels(face) is not None)
    lines = [
        f"photos: {len({face['photo'] for face in labelled.faces}) + len(labelled.empty_photos)}"
        f" ({len(labelled.empty_photos)} without a face)",
        f"faces: {len(labelled.faces)}, proposed: {len(proposals)}, in faces.csv: {trains}",
        f"proposals flagged for review: {sum(1 for face in proposals if face['flags'])}",
    ]
    lines += [f"  {flag}: {count}" for flag, count in flags.most_common()]
    lines.append(f"review them with: memberlens review {labelled.collection} --roster ROSTER")
    return "\n".join(lines)


def _member_photos(collection: Path, roster: Roster) -> list[tuple[str, str]]:
    photos_dir = collection / PHOTOS_DIR
    if not photos_dir.is_dir():
        raise DatasetError(
            f"{photos_dir} not found; pass a collection folder made by `memberlens collect`"
        )
    found: list[tuple[str, str]] = []
    for folder in sorted(path for path in photos_dir.iterdir() if path.is_dir()):
        if folder.name not in roster.slugs:
            logger.warning("folder of no roster member skipped", extra={"folder": folder.name})
            continue
        for path in sorted(item for item in folder.iterdir() if item.is_file()):
            found.append((path.relative_to(collection).as_posix(), folder.name))
    if not found:
        raise DatasetError(f"{photos_dir} holds no photo of a member of {roster.group}")
    return found


def _detect_and_describe(
    collection: Path,
    relative: str,
    detector: FaceDetector,
    describer: FaceDescriber,
    chips_dir: Path,
    options: LabelOptions,
) -> tuple[list[Face], NDArray[np.float32]]:
    try:
        photo = load_photo(
            collection / relative,
            max_bytes=options.max_photo_bytes,
            max_pixels=options.max_photo_pixels,
        )
    except MemberlensError as err:
        logger.warning("photo unreadable, skipped", extra={"photo": relative, "error": str(err)})
        return [], np.zeros((0, 0), dtype=np.float32)
    faces = detector.detect(photo)
    chips = align_faces(photo, faces)
    for index, chip in enumerate(chips):
        _write_png_atomically(chips_dir / f"{face_id_of(relative, index)}.png", chip)
    descriptors = describer.describe(chips) if faces else np.zeros((0, 0), dtype=np.float32)
    return faces, unit_rows(descriptors)


def _splits(
    collection: Path, photos: Sequence[str], options: LabelOptions
) -> dict[str, tuple[str, str]]:
    """Each photo's (split, group key): copies of one shot always share a side."""
    group_keys = group_duplicates([collection / photo for photo in photos])
    sides = split_groups(group_keys.values(), options.valid_share, options.seed)
    return {
        photo: (sides[group_keys[collection / photo]], group_keys[collection / photo])
        for photo in photos
    }


def _records(
    photo_faces: Sequence[PhotoFaces],
    verdicts: Sequence[FaceVerdict],
    digests: dict[str, str],
    splits: dict[str, tuple[str, str]],
    previous: dict[str, tuple[str, list[FaceRecord]]],
) -> list[FaceRecord]:
    faces_by_key = {
        (photo.photo, index): face
        for photo in photo_faces
        for index, face in enumerate(photo.faces)
    }
    searched = {photo.photo: photo.searched for photo in photo_faces}
    decided = {
        record["face_id"]: record
        for _, records in previous.values()
        for record in records
        if record["decision"]
    }
    records: list[FaceRecord] = []
    for verdict in verdicts:
        face = faces_by_key[(verdict.photo, verdict.face_index)]
        face_id = face_id_of(verdict.photo, verdict.face_index)
        split, group_key = splits[verdict.photo]
        record: FaceRecord = {
            "face_id": face_id,
            "photo": verdict.photo,
            "photo_sha256": digests[verdict.photo],
            "searched": searched[verdict.photo],
            "face_index": verdict.face_index,
            "box": [round(float(value), 2) for value in face.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
            "detection_score": round(face.detection_score, 5),
            "chip": f"{CHIPS_FOLDER}/{face_id}.png",
            "proposed": verdict.member,
            "member": verdict.member,
            "similarity": None if verdict.similarity is None else round(verdict.similarity, 4),
            "nearest_other": verdict.nearest_other,
            "flags": list(verdict.flags),
            "decision": "",
            "split": split,
            "group_key": group_key,
        }
        earlier = decided.get(face_id)
        if earlier is not None and earlier["photo_sha256"] == record["photo_sha256"]:
            record["decision"], record["member"] = earlier["decision"], earlier["member"]
        records.append(record)
    return records


def _previous_faces(collection: Path) -> dict[str, tuple[str, list[FaceRecord]]]:
    """Each photo labelled before: its sha256 then, and its faces."""
    if not (collection / LABELLED_DIR / PROPOSALS_FILE).is_file():
        return {}
    labelled = LabelledSet.load(collection)
    by_photo: dict[str, tuple[str, list[FaceRecord]]] = {
        photo: (digest, []) for photo, digest in labelled.empty_photos.items()
    }
    for face in labelled.faces:
        by_photo.setdefault(face["photo"], (face["photo_sha256"], []))[1].append(face)
    return by_photo


def _cached_faces(
    previous: tuple[str, list[FaceRecord]] | None, digest: str, cache: "_DescriptorCache"
) -> tuple[list[Face], NDArray[np.float32]] | None:
    """The faces found before in a photo with these very bytes, or None to detect again."""
    if previous is None or previous[0] != digest:
        return None
    records = previous[1]
    descriptors = cache.get([record["face_id"] for record in records])
    if descriptors is None:
        return None
    return [_face_of(record) for record in records], descriptors


def _remove_stale_chips(chips_dir: Path, chips: set[str]) -> None:
    for path in chips_dir.glob("*.png"):
        if f"{CHIPS_FOLDER}/{path.name}" not in chips:
            path.unlink()


def _face_of(record: FaceRecord) -> Face:
    x_min, y_min, x_max, y_max = record["box"]
    return Face(
        box=(x_min, y_min, x_max, y_max),
        landmarks=np.asarray(record["landmarks"], dtype=np.float32),
        detection_score=record["detection_score"],
    )


class _DescriptorCache:
    """Descriptors by face id, so that photos labelled before are not described again."""

    def __init__(self, descriptors: dict[str, NDArray[np.float32]]) -> None:
        self._descriptors = descriptors

    @classmethod
    def load(cls, path: Path) -> "_DescriptorCache":
        if not path.is_file():
            return cls({})
        with np.load(path) as stored:
            ids, vectors = stored["face_ids"], stored["descriptors"]
        return cls({str(face_id): vector for face_id, vector in zip(ids, vectors, strict=True)})

    def get(self, face_ids: list[str]) -> NDArray[np.float32] | None:
        if not all(face_id in self._descriptors for face_id in face_ids):
            return None
        if not face_ids:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._descriptors[face_id] for face_id in face_ids])

    def put(self, face_ids: list[str], descriptors: NDArray[np.float32]) -> None:
        for face_id, vector in zip(face_ids, descriptors, strict=True):
            self._descriptors[face_id] = vector

    def keep_only(self, face_ids: list[str]) -> None:
        kept = set(face_ids)
        self._descriptors = {key: value for key, value in self._descriptors.items() if key in kept}

    def save(self, path: Path) -> None:
        face_ids = sorted(self._descriptors)
        vectors = (
            np.stack([self._descriptors[face_id] for face_id in face_ids])
            if face_ids
            else np.zeros((0, 0), dtype=np.float32)
        )
        buffer = io.BytesIO()
        np.savez(buffer, face_ids=np.array(face_ids), descriptors=vectors)
        write_bytes_atomic(path, buffer.getvalue())


def _write_png_atomically(path: Path, chip: NDArray[np.uint8]) -> None:
    buffer = io.BytesIO()
    Image.fromarray(chip).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def _sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
