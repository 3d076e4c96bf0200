"""Keep each member's known face descriptors and measure how close a new face lies to them."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

GALLERY_TOP_K = 3


@dataclass(frozen=True)
class Gallery:
    """Descriptors of training faces, each with the index of its member.

    Descriptors are compared after subtracting `center` (the mean known descriptor) and scaling
    to unit length. Face descriptors share a large common part, so plain cosine similarities all
    crowd near 1; centring spreads them out and makes the gate's cut easier to place.

    Attributes:
        descriptors: (n_known, D) float32, centred and unit length.
        member_indices: (n_known,) int64, index into the roster.
        n_members: size of the roster.
        center: (D,) float32, the mean raw descriptor of the known faces.
    """

    descriptors: NDArray[np.float32]
    member_indices: NDArray[np.int64]
    n_members: int
    center: NDArray[np.float32]

    @classmethod
    def from_raw(
        cls, raw_descriptors: NDArray[np.float32], member_indices: NDArray[np.int64], n_members: int
    ) -> "Gallery":
        """Build a gallery from raw body outputs of known faces: (n_known, D) float32."""
        center = raw_descriptors.mean(axis=0).astype(np.float32)
        return cls(_centred_unit(raw_descriptors, center), member_indices, n_members, center)

    def similarities(self, raw_descriptors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Return (n_faces, n_members): mean cosine similarity to each member's closest faces.

        The mean over the `GALLERY_TOP_K` closest known faces, rather than the single closest,
        keeps one mislabelled or odd training face from vouching for a stranger. A member with
        no known face gets -1.

        Args:
            raw_descriptors: (n_faces, D) float32 body outputs, as `describe_crops` gives them.
        """
        n_faces = raw_descriptors.shape[0]
        result = np.full((n_faces, self.n_members), -1.0, dtype=np.float32)
        if n_faces == 0:
            return result
        cosine = _centred_unit(raw_descriptors, self.center) @ self.descriptors.T
        for member_index in range(self.n_members):
            columns = cosine[:, self.member_indices == member_index]  # (n_faces, n_known_m)
            if columns.shape[1] == 0:
                continue
            k = min(GALLERY_TOP_K, columns.shape[1])
            closest = -np.partition(-columns, k - 1, axis=1)[:, :k]
            result[:, member_index] = closest.mean(axis=1)
        return result


def _centred_unit(
    descriptors: NDArray[np.float32], center: NDArray[np.float32]
) -> NDArray[np.float32]:
    centred = descriptors - center[None, :]
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit: NDArray[np.float32] = (centred / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
