"""Fuse the members named from faces with the scene model's whole-photo scores.

The rule, chosen by measurement (`benchmarks/scene_fusion_rules.py`: image cuts tuned on one
set of valid scene photos, every rule scored on a second set made with another seed):

1. Every member named from a face stays, with its box: the face path is the surer of the two
   whenever it has a face to go on, and only it gives boxes.
2. Lift (`lift_faces`, with the bundle's tuned `LiftCuts`; none when tuning found no gain): in
   a photo where some face was named on its own cuts, a face named nobody may take its most
   probable member not yet named, when that probability reaches the lift's face cut and the
   scene model gives the member a share of their image cut. The face keeps its box and
   `source: "face"`.
3. A member that no face names is added, with `box: null` and `source: "image"`, when the
   scene model's probability for them reaches their image threshold, but only in a photo
   where the faces leave room for someone: no face was found at all, or a face found was
   still named nobody after the lifts. In a photo whose every face was named, the scene
   model adds nobody.
4. The scene score never vetoes a named face.

Measured with the first scene bundle (EfficientNet-Lite0 at 160 px) on 360 valid scene photos,
member F1 over all photos: faces only 0.759, rule 3 without its gate 0.895, with it 0.908;
exact-set rate 0.581, 0.661, 0.719. Without the gate the scene model, which is far less sure
of who is who than the faces, added wrong members to crops whose faces were all named (exact
set on crops of 1 to 4 members: 0.376 against 0.466 gated). Capping additions at the number
of refused faces reached only F1 0.881; a veto of named faces under image score 0.02 changed
no answer.

The lift was first tried with fixed cuts (a refused face within 0.2 of its face cut, the image
at half the member's cut) and not kept: it named one more stranger photo on the small subset
of the integration test. Tuned on the valid scene photos instead (`tune_lift` in
`model.scene_tuning`: the cuts must raise member F1 and name no more members in stranger
photos), and kept to photos where some face was named on its own cuts, it is kept. On the
two-model scene bundle, scored by `memberlens evaluate --scene-photos` on a second set of
scene photos, it raised the fused exact-set rate on crops of 1 to 4 members from 0.519 to
0.579 and member F1 from 0.907 to 0.915, with the same stranger photos named. Without the
rule that some face be named first, it named 3 instead of 1 of the 333 test stranger faces.
"""

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from model.assign import NOBODY
from model.results import MemberDict
from model.thresholds import LiftCuts

logger = logging.getLogger(__name__)

# An image cut of 1.0 means "never from the image alone": a probability rounded for the answer
# can reach 1.0, and tuning gives this cut to members whose scene score does not help.
NEVER_IMAGE_CUT = 1.0
# Faces named on their own cuts a photo needs before a refused face there may be lifted.
LIFT_MIN_NAMED = 1
# Whether the image may add members only to photos with a face left unnamed, or with no face.
GATE_IMAGE_ADDITIONS = True


def lift_faces(
    probabilities: NDArray[np.float32],
    assigned: NDArray[np.int64],
    image_scores: NDArray[np.float32],
    image_cuts: NDArray[np.float32],
    lift: LiftCuts | None,
) -> NDArray[np.int64]:
    """Name faces that the face path refused where the scene model backs their best member.

    Only photos in which the face path (own or context cuts) named at least `LIFT_MIN_NAMED`
    faces are lifted: a face alone in its photo is left as the face path named it. The faces
    named nobody then choose one at a time, the face with the highest probability for a member
    not yet named first. Each takes that member when the probability reaches `lift.face` and
    the scene model's score for the member reaches `lift.image_share` times the member's image
    cut; otherwise it stays nobody. A member whose image cut is `NEVER_IMAGE_CUT` is never
    lifted: the scene model does not know them. The gallery cut plays no part.

    Args:
        probabilities: (n_faces, n_members) face-model probabilities, rounded as answers show
            them (4 decimals), so that a rule replayed from answers decides the same.
        assigned: (n_faces,) member index per face from the face path, or `NOBODY`.
        image_scores: (n_members,) the scene model's probabilities for the photo.
        image_cuts: (n_members,) image thresholds.
        lift: the cuts; None lifts nothing.

    Returns:
        (n_faces,) member index per face, lifted faces included.
    """
    lifted = assigned.copy()
    n_named = int((assigned != NOBODY).sum())
    if lift is None or n_named < LIFT_MIN_NAMED or n_named == len(assigned):
        return lifted
    is_backed = (image_cuts < NEVER_IMAGE_CUT) & (image_scores >= lift.image_share * image_cuts)
    taken = np.zeros(probabilities.shape[1], dtype=bool)
    taken[assigned[assigned != NOBODY]] = True
    waiting = list(np.flatnonzero(assigned == NOBODY))
    while waiting and not taken.all():
        free = np.where(taken[None, :], -1.0, probabilities[waiting])
        # The surest face first; ties go to the earlier face and the earlier member.
        position, member = np.unravel_index(int(free.argmax()), free.shape)
        face = waiting.pop(int(position))
        if free[position, member] >= lift.face and is_backed[member]:
            lifted[face] = int(member)
            taken[member] = True
    return lifted


def rounded_probabilities(probabilities: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return face probabilities rounded to 4 decimals, exactly as answers' candidates hold them."""
    return np.array(
        [[round(float(value), 4) for value in row] for row in probabilities],
        dtype=np.float32,
    ).reshape(probabilities.shape)


def image_members(
    image_scores: Mapping[str, float],
    image_cuts: Mapping[str, float],
    named_from_faces: Sequence[str],
) -> list[MemberDict]:
    """Return the members that only the scene model finds, best first, each with no box.

    Args:
        image_scores: the scene model's probability per member.
        image_cuts: the image threshold per member; a member without one is never added.
        named_from_faces: members already named from a face; they are not added again.
    """
    named = set(named_from_faces)
    added: list[MemberDict] = [
        {"name": member, "score": round(float(score), 4), "source": "image", "box": None}
        for member, score in image_scores.items()
        if member not in named
        and image_cuts.get(member, NEVER_IMAGE_CUT) < NEVER_IMAGE_CUT
        and score >= image_cuts[member]
    ]
    added.sort(key=lambda entry: entry["score"], reverse=True)
    return added


def fuse_members(
    face_members: Sequence[MemberDict],
    image_scores: Mapping[str, float],
    image_cuts: Mapping[str, float],
    *,
    detected_faces: int,
    unnamed_faces: int,
) -> list[MemberDict]:
    """Return the face members, then the members only the scene model is sure of.

    Args:
        face_members: the members named from faces, with their boxes.
        image_scores: the scene model's probability per member (empty without a scene model).
        image_cuts: the image threshold per member.
        detected_faces: faces the detector found in the photo.
        unnamed_faces: of those, faces named nobody.
    """
    is_open = is_addition_allowed(np.array([detected_faces]), np.array([unnamed_faces]))[0]
    if not is_open:
        return list(face_members)
    named = [entry["name"] for entry in face_members]
    return [*face_members, *image_members(image_scores, image_cuts, named)]


def is_addition_allowed(
    detected_faces: NDArray[np.int64], unnamed_faces: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Return which photos the image may add members to, under `GATE_IMAGE_ADDITIONS`.

    With the gate, a photo is open when the detector found no face at all (backs, masks, blur)
    or when some face it found was named nobody; a photo whose every face was named is closed.

    Args:
        detected_faces: (n_photos,) faces found.
        unnamed_faces: (n_photos,) faces named nobody.
    """
    if not GATE_IMAGE_ADDITIONS:
        return np.ones(detected_faces.shape, dtype=bool)
    is_open: NDArray[np.bool_] = (detected_faces == 0) | (unnamed_faces > 0)
    return is_open


def fused_sets(
    face_named: NDArray[np.bool_],
    image_scores: NDArray[np.float32],
    cuts: NDArray[np.float32],
    *,
    is_open: NDArray[np.bool_] | None = None,
) -> NDArray[np.bool_]:
    """Apply the fusion rule to many photos at once, as tuning and evaluation need.

    Args:
        face_named: (n_photos, n_members) members named from faces.
        image_scores: (n_photos, n_members) scene-model probabilities.
        cuts: (n_members,) image thresholds; `NEVER_IMAGE_CUT` adds nobody.
        is_open: (n_photos,) photos the image may add to (see `is_addition_allowed`); all
            when None.

    Returns:
        (n_photos, n_members) the members the fused answer names.
    """
    is_added = (image_scores >= cuts[None, :]) & (cuts[None, :] < NEVER_IMAGE_CUT)
    if is_open is not None:
        is_added &= is_open[:, None]
    fused: NDArray[np.bool_] = face_named | is_added
    return fused
