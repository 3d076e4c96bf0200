import numpy as np

from model.gallery import Gallery


def _unit(vectors: list[list[float]]) -> np.ndarray:
    array = np.array(vectors, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_face_is_most_similar_to_its_own_member() -> None:
    gallery = Gallery(
        descriptors=_unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]),
        member_indices=np.array([0, 0, 1, 1]),
        n_members=2,
    )

    similarities = gallery.similarities(_unit([[1, 0.05]]))

    assert similarities.shape == (1, 2)
    assert similarities[0, 0] > 0.9 > similarities[0, 1]


def test_member_without_known_faces_gets_minus_one() -> None:
    gallery = Gallery(_unit([[1, 0]]), np.array([0]), n_members=2)

    similarities = gallery.similarities(_unit([[1, 0]]))

    assert similarities[0, 1] == -1.0


def test_one_odd_known_face_does_not_vouch_alone() -> None:
    # Member 0 has one known face identical to the query and three far from it.
    gallery = Gallery(
        _unit([[1, 0], [0, 1], [0, 1], [0, 1]]), np.array([0, 0, 0, 0]), n_members=1
    )

    similarities = gallery.similarities(_unit([[1, 0]]))

    assert similarities[0, 0] < 0.5
