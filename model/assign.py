"""Give each member to at most one face of a photo: a one-to-one assignment on face scores."""

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

NOBODY = -1


def assign_members(
    probabilities: NDArray[np.float32], is_eligible: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """Assign members to faces so that the sum of probabilities of the kept pairs is largest.

    A pair (face, member) can be kept only where `is_eligible` is true. Every member goes to
    at most one face and every face to at most one member.

    Args:
        probabilities: (n_faces, n_members) face-model probabilities in [0, 1].
        is_eligible: (n_faces, n_members) which pairs may be kept.

    Returns:
        (n_faces,) the member index for each face, or `NOBODY` (-1).
    """
    n_faces, n_members = probabilities.shape
    assigned = np.full(n_faces, NOBODY, dtype=np.int64)
    if n_faces == 0 or n_members == 0 or not is_eligible.any():
        return assigned

    # An ineligible pair costs more than any eligible one can gain, so the solver only takes it
    # when it has no other way to fill a row; such pairs are dropped afterwards.
    cost = np.where(is_eligible, -probabilities.astype(np.float64), 1.0)
    face_indices, member_indices = linear_sum_assignment(cost)
    for face_index, member_index in zip(face_indices, member_indices, strict=True):
        if is_eligible[face_index, member_index]:
            assigned[face_index] = member_index
    return assigned


def name_faces(
    probabilities: NDArray[np.float32], is_known: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """Name the known faces of one photo, each member at most once.

    A known face whose most probable member goes to a surer face takes its next best member;
    in group photos this mends many faces whose first guess was wrong.

    Args:
        probabilities: (n_faces, n_members) face-model probabilities.
        is_known: (n_faces,) faces that passed their thresholds; the others stay nobody.

    Returns:
        (n_faces,) the member index for each face, or `NOBODY` (-1).
    """
    eligible = np.repeat(is_known[:, None], probabilities.shape[1], axis=1)
    return assign_members(probabilities, eligible)
