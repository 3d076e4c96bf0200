"""Fuse the members named from faces with the scene model's whole-photo scores.

The rule, chosen by measurement (`benchmarks/scene_fusion_rules.py`: image cuts tuned on one
set of valid scene photos, every rule scored on a second set made with another seed):

1. Every member named from a face stays, with its box: the face path is the surer of the two
   whenever it has a face to go on, and only it gives boxes.
2. A member that no face names is added, with `box: null` and `source: "image"`, when the
   scene model's probability for them reaches their image threshold, but only in a photo
   where the faces leave room for someone: no face was found at all, or a face found was
   named nobody. In a photo whose every face was named, the scene model adds nobody.
3. The scene score neither lifts a face under its threshold nor vetoes a named face.

Measured with the first scene bundle (EfficientNet-Lite0 at 160 px) on 360 valid scene photos,
member F1 over all photos: faces only 0.759, rule 2 without its gate 0.895, with it 0.908;
exact-set rate 0.581, 0.661, 0.719. Without the gate the scene model, which is far less sure
of who is who than the faces, added wrong members to crops whose faces were all named (exact
set on crops of 1 to 4 members: 0.376 against 0.466 gated). A lift (naming a refused face
whose best member is within 0.2 of its cut when the image gives that member half its cut)
reached F1 0.899, and capping additions at the number of refused faces 0.881; a veto of
named faces under image score 0.02 changed no answer. With the final bundle (scored by
`memberlens evaluate --scene-photos` on the second set) the lift on top of the gated rule
raised member F1 from 0.909 to 0.913, but on the small subset of the integration test it
named one more stranger photo (5.0% to 7.5%); strangers being the hard part, none of the
three was kept.
"""

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from model.results import MemberDict

logger = logging.getLogger(__name__)

# An image cut of 1.0 means "never from the image alone": a probability rounded for the answer
# can reach 1.0, and tuning gives this cut to members whose scene score does not help.
NEVER_IMAGE_CUT = 1.0
# Whether the image may add members only to photos with a face left unnamed, or with no face.
GATE_IMAGE_ADDITIONS = True


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
