"""Keep the labels of a collection's faces: proposals, review decisions, training manifest.

`COLLECTION/labelled/` is a folder that `memberlens train --prepared` reads as it reads the
output of `memberlens prepare`: `chips/`, `faces.csv` and `photos.csv`. Beside them,
`proposals.json` holds every face with its proposed label, flags and review decision. A
decision changes `proposals.json`, and `faces.csv` and `photos.csv` are rewritten from it at
once, so a relabel changes what trains.
"""

import csv
import hashlib
import io
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from PIL import Image

from data_tools.atomic import write_text_atomic
from data_tools.errors import DatasetError, InvalidParameterError
from data_tools.prepare import FACE_COLUMNS, FACES_FILE, PHOTO_COLUMNS, PHOTOS_FILE

logger = logging.getLogger(__name__)

LABELLED_DIR = "labelled"
PROPOSALS_FILE = "proposals.json"
COLLECTED_SOURCE = "collected"
CONFIRMED, RELABELLED, NOT_A_MEMBER, DELETED = "confirmed", "relabelled", "not-a-member", "deleted"
DECISIONS = (CONFIRMED, RELABELLED, NOT_A_MEMBER, DELETED)


class FaceRecord(TypedDict):
    """One face of a collected photo as `proposals.json` keeps it.

    `member` is the current label (empty: none); `proposed` is what `label` proposed;
    `decision` is the review's word on it (empty until reviewed). Boxes and landmarks are
    pixels of the upright photo; `photo` is relative to the collection folder.
    """

    face_id: str
    photo: str
    photo_sha256: str
    searched: str
    face_index: int
    box: list[float]
    landmarks: list[list[float]]
    detection_score: float
    chip: str
    proposed: str
    member: str
    similarity: float | None
    nearest_other: str
    flags: list[str]
    decision: str
    split: str
    group_key: str


class LabelledSet:
    """The labels of one collection: every face with its proposal and decision.

    Methods that change it rewrite `proposals.json`, `faces.csv` and `photos.csv` before they
    return; a lock makes it safe to share between the threads of the review server.
    """

    def __init__(
        self,
        collection: Path,
        roster_slugs: list[str],
        faces: list[FaceRecord],
        empty_photos: dict[str, str] | None = None,
    ) -> None:
        """Hold the faces of `collection`; use `load` or `label_collection` to get one.

        Args:
            collection: the collection folder.
            roster_slugs: the members a face may be labelled as.
            faces: every face of every photo.
            empty_photos: photos in which no face was found, with their sha256.
        """
        self.collection = collection
        self.root = collection / LABELLED_DIR
        self.roster_slugs = roster_slugs
        self.faces = faces
        self.empty_photos = empty_photos or {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, collection: Path) -> "LabelledSet":
        """Read the labels of a collection.

        Raises:
            DatasetError: the collection has not been labelled, or its proposals are unreadable.
        """
        path = collection / LABELLED_DIR / PROPOSALS_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise DatasetError(
                f"{path} not found; run `memberlens label {collection} --roster ROSTER` first"
            ) from err
        except (OSError, ValueError) as err:
            raise DatasetError(f"cannot read {path}: {err}") from err
        return cls(
            collection,
            list(document["roster"]),
            list(document["faces"]),
            dict(document.get("empty_photos", {})),
        )

    def face(self, face_id: str) -> FaceRecord:
        """Return the face with this id.

        Raises:
            InvalidParameterError: no face has this id.
        """
        for face in self.faces:
            if face["face_id"] == face_id:
                return face
        raise InvalidParameterError(f"no face {face_id!r} in {self.root}")

    def decide(self, face_id: str, decision: str, member: str = "") -> FaceRecord:
        """Record a review decision on one face and rewrite the labels and the manifest.

        Args:
            face_id: the face.
            decision: one of `DECISIONS`, or "" to take a decision back.
            member: for `relabelled`, the member the face shows.

        Raises:
            InvalidParameterError: unknown face or decision, or a relabel to a member who is
                not in the roster.
        """
        if decision not in (*DECISIONS, ""):
            raise InvalidParameterError(
                f"decision must be one of {', '.join(DECISIONS)} (or empty), got {decision!r}"
            )
        if decision == RELABELLED and member not in self.roster_slugs:
            raise InvalidParameterError(
                f"relabel needs a member of the roster ({', '.join(self.roster_slugs)}), "
                f"got {member!r}"
            )
        with self._lock:
            face = self.face(face_id)
            face["decision"] = decision
            face["member"] = _member_after(face, decision, member)
            self.save()
        logger.info("face reviewed", extra={"face": face_id, "decision": decision or "undone"})
        return face

    def save(self) -> None:
        """Write `proposals.json`, then `faces.csv` and `photos.csv` derived from it."""
        self.root.mkdir(parents=True, exist_ok=True)
        document = {
            "roster": self.roster_slugs,
            "faces": self.faces,
            "empty_photos": self.empty_photos,
        }
        write_text_atomic(self.root / PROPOSALS_FILE, json.dumps(document, indent=1))
        write_text_atomic(self.root / FACES_FILE, _csv_text(FACE_COLUMNS, self._face_rows()))
        write_text_atomic(self.root / PHOTOS_FILE, _csv_text(PHOTO_COLUMNS, self._photo_rows()))

    def _face_rows(self) -> list[dict[str, str]]:
        return [
            _face_row(self.collection, face, labels)
            for face in self.faces
            if (labels := training_labels(face)) is not None
        ]

    def _photo_rows(self) -> list[dict[str, str]]:
        """Photos whose every face has a training label, so evaluation can trust them."""
        by_photo: dict[str, list[FaceRecord]] = {}
        for face in self.faces:
            by_photo.setdefault(face["photo"], []).append(face)
        rows = []
        for photo, faces in by_photo.items():
            labels = [training_labels(face) for face in faces]
            if any(label is None for label in labels) or not any(labels):
                continue
            rows.append(_photo_row(self.collection / photo, faces))
        return rows


def training_labels(face: FaceRecord) -> str | None:
    """Return the face's label for training ("" for nobody known), or None to leave it out.

    A face trains once reviewed (confirmed, relabelled or not a member), or unreviewed when it
    has a proposed member and no flag. Deleted faces, flagged faces waiting for review and the
    other faces of a photo of several never train.
    """
    decision = face["decision"]
    if decision == DELETED:
        return None
    if decision == NOT_A_MEMBER:
        return ""
    if decision in (CONFIRMED, RELABELLED):
        return face["member"] or None
    return face["member"] if face["member"] and not face["flags"] else None


def face_id_of(relative_photo: str, face_index: int) -> str:
    """Return a face's id: stable for the same photo path and face index across runs."""
    digest = hashlib.sha256(relative_photo.encode("utf-8")).hexdigest()[:16]
    return f"{digest}-{face_index:02d}"


def _member_after(face: FaceRecord, decision: str, member: str) -> str:
    if decision == RELABELLED:
        return member
    if decision == NOT_A_MEMBER:
        return ""
    if decision == CONFIRMED:
        return face["member"] or face["proposed"] or face["searched"]
    return face["member"] if decision == DELETED else face["proposed"]


def _face_row(collection: Path, face: FaceRecord, labels: str) -> dict[str, str]:
    x_min, y_min, x_max, y_max = face["box"]
    return {
        "chip": face["chip"],
        "photo": str((collection / face["photo"]).resolve()),
        "source": COLLECTED_SOURCE,
        "split": face["split"],
        "labels": labels,
        "x_min": f"{x_min:.2f}",
        "y_min": f"{y_min:.2f}",
        "x_max": f"{x_max:.2f}",
        "y_max": f"{y_max:.2f}",
        "detection_score": f"{face['detection_score']:.5f}",
        "landmarks": json.dumps(face["landmarks"]),
        "group_key": face["group_key"],
    }


def _photo_row(path: Path, faces: list[FaceRecord]) -> dict[str, str]:
    with Image.open(path) as image:
        width, height = image.size
    boxes = [
        {"member": face["member"], "x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}
        for face in faces
        if training_labels(face)
        for x0, y0, x1, y1 in [face["box"]]
    ]
    return {
        "photo": str(path.resolve()),
        "split": faces[0]["split"],
        "group_key": faces[0]["group_key"],
        "width": str(width),
        "height": str(height),
        "boxes": json.dumps(boxes),
    }


def _csv_text(columns: Sequence[str], rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
