"""Keep each member's known face descriptors and measure how close a new face lies to them."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

GALLERY_TOP_K = 3


@dataclass(frozen=True)
class Gallery:
    """Unit-length descriptors of training faces, each with the index of its member.

    Attributes:
        descriptors: (n_known, D) float32, unit length.
        member_indices: (n_known,) int64, index into the roster.
        n_members: size of the roster.
    """

    descriptors: NDArray[np.float32]
    member_indices: NDArray[np.int64]
    n_members: int

    def similarities(self, descriptors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Return (n_faces, n_members): mean cosine similarity to each member's closest faces.

        The mean over the `GALLERY_TOP_K` closest known faces, rather than the single closest,
        keeps one mislabelled or odd training face from vouching for a stranger. A member with
        no known face gets -1.
        """
        n_faces = descriptors.shape[0]
        result = np.full((n_faces, self.n_members), -1.0, dtype=np.float32)
        if n_faces == 0:
            return result
        cosine = descriptors @ self.descriptors.T  # (n_faces, n_known)
        for member_index in range(self.n_members):
            columns = cosine[:, self.member_indices == member_index]
            if columns.shape[1] == 0:
                continue
            k = min(GALLERY_TOP_K, columns.shape[1])
            closest = -np.partition(-columns, k - 1, axis=1)[:, :k]
            result[:, member_index] = closest.mean(axis=1)
        return result
