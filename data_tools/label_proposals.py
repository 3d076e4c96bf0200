"""Propose a member label for the faces of collected photos, and flag the doubtful ones.

A collected photo was found by searching for one member, so one of its faces is probably that
member. With one face, that face gets the label. With several, the face closest to the
member's other faces (in face-descriptor space) gets it, flagged for review. Faces far from
their member's cluster, nearer another member's cluster, of low detection score or tiny are
flagged too. Flagged faces stay out of training until someone reviews them.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from data_tools.faces import Face

logger = logging.getLogger(__name__)

FLAG_SEVERAL_FACES = "several-faces"
FLAG_FAR_FROM_MEMBER = "far-from-member"
FLAG_NEARER_OTHER_MEMBER = "nearer-other-member"
FLAG_LOW_DETECTION_SCORE = "low-detection-score"
FLAG_TINY_FACE = "tiny-face"
FLAG_FEW_FACES = "too-few-faces-to-compare"
# The scale that makes a median absolute deviation estimate a normal standard deviation.
_MAD_TO_SIGMA = 1.4826


class FaceDescriber(Protocol):
    """Anything that turns aligned face chips into face descriptors."""

    def describe(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Return (n, D) float32 descriptors of (n, 150, 150, 3) RGB uint8 chips."""
        ...


@dataclass(frozen=True)
class ProposalOptions:
    """When a face is flagged for review.

    Attributes:
        min_detection_score: faces the detector is less sure of are flagged.
        min_face_px: faces whose box has a shorter side, in photo pixels, are flagged.
        far_mads: a face whose similarity to its member's cluster lies this many (scaled)
            median absolute deviations under the member's median is flagged as far from it.
        min_cluster_faces: a member needs this many faces before faces are compared with its
            cluster; fewer, and its faces are flagged as too few to compare.
    """

    min_detection_score: float = 0.9
    min_face_px: int = 40
    far_mads: float = 3.0
    min_cluster_faces: int = 3


@dataclass
class PhotoFaces:
    """The faces found in one collected photo, with their unit-length descriptors."""

    photo: str
    searched: str
    faces: list[Face]
    descriptors: NDArray[np.float32]  # (n_faces, D), unit length


@dataclass
class FaceVerdict:
    """What is proposed for one face: its label (or none), its similarity and its flags.

    Attributes:
        photo: the photo, as in `PhotoFaces`.
        face_index: the face's index in its photo's faces.
        member: the proposed member slug; empty for a face that gets no label (the other
            faces of a photo of several).
        similarity: cosine similarity to the proposed member's cluster, without this face;
            None when the member has too few faces to compare.
        nearest_other: the other member whose cluster is nearest, when it is nearer than the
            proposed member's; else empty.
        flags: why the face needs review; empty when it can train as proposed.
    """

    photo: str
    face_index: int
    member: str
    similarity: float | None = None
    nearest_other: str = ""
    flags: list[str] = field(default_factory=list)


def propose_labels(photos: Sequence[PhotoFaces], options: ProposalOptions) -> list[FaceVerdict]:
    """Propose a label for one face of each photo and flag what needs review.

    Args:
        photos: every collected photo with its detected faces and their descriptors.
        options: the flagging thresholds.

    Returns:
        One verdict per face of every photo, in photo order then face order.
    """
    seed_centroids = _seed_centroids(photos, options)
    chosen = {
        photo.photo: _choose_face(photo, seed_centroids.get(photo.searched)) for photo in photos
    }

    verdicts: list[FaceVerdict] = []
    for photo in photos:
        for index, face in enumerate(photo.faces):
            is_chosen = index == chosen[photo.photo]
            verdict = FaceVerdict(photo.photo, index, photo.searched if is_chosen else "")
            # Only a proposal is flagged: the other faces get no label, so nothing to review.
            if is_chosen:
                if len(photo.faces) > 1:
                    verdict.flags.append(FLAG_SEVERAL_FACES)
                verdict.flags.extend(_detection_flags(face, options))
            verdicts.append(verdict)

    _compare_with_clusters(photos, verdicts, options)
    flagged = sum(1 for verdict in verdicts if verdict.member and verdict.flags)
    logger.info(
        "labels proposed",
        extra={"photos": len(photos), "faces": len(verdicts), "flagged_proposals": flagged},
    )
    return verdicts


def unit_rows(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """Return the rows scaled to unit length (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: NDArray[np.float32] = array / np.maximum(norms, 1e-12)
    return unit


def _seed_centroids(
    photos: Sequence[PhotoFaces], options: ProposalOptions
) -> dict[str, NDArray[np.float32]]:
    """Each member's cluster centre from its photos with one face, with outliers dropped once."""
    sole_faces: dict[str, list[NDArray[np.float32]]] = {}
    for photo in photos:
        if len(photo.faces) == 1:
            sole_faces.setdefault(photo.searched, []).append(photo.descriptors[0])
    centroids: dict[str, NDArray[np.float32]] = {}
    for member, descriptors in sole_faces.items():
        if len(descriptors) < options.min_cluster_faces:
            continue
        stacked = np.stack(descriptors)  # (n, D)
        centre = _unit(stacked.sum(axis=0))
        similarities = stacked @ centre
        is_inlier = similarities >= _low_cut(similarities, options.far_mads)
        centroids[member] = _unit(stacked[is_inlier].sum(axis=0))
    return centroids


def _choose_face(photo: PhotoFaces, centroid: NDArray[np.float32] | None) -> int:
    """The face most like the member's cluster; without a cluster, the largest face."""
    if not photo.faces:
        return -1
    if centroid is not None:
        return int(np.argmax(photo.descriptors @ centroid))
    areas = [(face.box[2] - face.box[0]) * (face.box[3] - face.box[1]) for face in photo.faces]
    return int(np.argmax(areas))


def _detection_flags(face: Face, options: ProposalOptions) -> list[str]:
    flags = []
    if face.detection_score < options.min_detection_score:
        flags.append(FLAG_LOW_DETECTION_SCORE)
    x_min, y_min, x_max, y_max = face.box
    if min(x_max - x_min, y_max - y_min) < options.min_face_px:
        flags.append(FLAG_TINY_FACE)
    return flags


def _compare_with_clusters(
    photos: Sequence[PhotoFaces], verdicts: list[FaceVerdict], options: ProposalOptions
) -> None:
    """Set each proposal's similarity to its member's cluster and flag the doubtful ones."""
    descriptor_of = {
        (photo.photo, index): photo.descriptors[index]
        for photo in photos
        for index in range(len(photo.faces))
    }
    proposals = [verdict for verdict in verdicts if verdict.member]
    members = sorted({verdict.member for verdict in proposals})
    sums = {member: np.zeros_like(next(iter(descriptor_of.values()))) for member in members}
    counts = dict.fromkeys(members, 0)
    for verdict in proposals:
        sums[verdict.member] += descriptor_of[(verdict.photo, verdict.face_index)]
        counts[verdict.member] += 1
    comparable = {member for member in members if counts[member] > options.min_cluster_faces}

    for verdict in proposals:
        descriptor = descriptor_of[(verdict.photo, verdict.face_index)]
        if verdict.member not in comparable:
            verdict.flags.append(FLAG_FEW_FACES)
            continue
        verdict.similarity = float(descriptor @ _unit(sums[verdict.member] - descriptor))
        others = {
            member: float(descriptor @ _unit(sums[member]))
            for member in comparable
            if member != verdict.member
        }
        nearest = max(others, key=lambda member: others[member], default="")
        if nearest and others[nearest] > verdict.similarity:
            verdict.nearest_other = nearest
            verdict.flags.append(FLAG_NEARER_OTHER_MEMBER)

    for member in comparable:
        own = [verdict for verdict in proposals if verdict.member == member]
        similarities = np.array([verdict.similarity for verdict in own], dtype=np.float64)
        cut = _low_cut(similarities, options.far_mads)
        for verdict in own:
            if verdict.similarity is not None and verdict.similarity < cut:
                verdict.flags.append(FLAG_FAR_FROM_MEMBER)


def _low_cut(similarities: NDArray[np.floating], far_mads: float) -> float:
    """The similarity under which a face is far from its cluster: median - far_mads * sigma."""
    median = float(np.median(similarities))
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(similarities - median)))
    return median - far_mads * spread


def _unit(vector: NDArray[np.floating]) -> NDArray[np.float32]:
    array = np.asarray(vector, dtype=np.float32)
    return array / max(float(np.linalg.norm(array)), 1e-12)
