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
        center=np.zeros(2, dtype=np.float32),
    )

    similarities = gallery.similarities(_unit([[1, 0.05]]))

    assert similarities.shape == (1, 2)
    assert similarities[0, 0] > 0.9 > similarities[0, 1]


def test_member_without_known_faces_gets_minus_one() -> None:
    gallery = Gallery(_unit([[1, 0]]), np.array([0]), 2, np.zeros(2, np.float32))

    similarities = gallery.similarities(_unit([[1, 0]]))

    assert similarities[0, 1] == -1.0


def test_one_odd_known_face_does_not_vouch_alone() -> None:
    # Member 0 has one known face identical to the query and three far from it.
    gallery = Gallery(
        _unit([[1, 0], [0, 1], [0, 1], [0, 1]]), np.array([0, 0, 0, 0]), 1, np.zeros(2, np.float32)
    )

    similarities = gallery.similarities(_unit([[1, 0]]))

    assert similarities[0, 0] < 0.5


def test_centring_separates_faces_that_share_a_common_part() -> None:
    # Raw descriptors all point mostly the same way; only the small second part differs.
    raw = np.array([[10.0, 1.0], [10.0, 1.1], [10.0, -1.0], [10.0, -1.1]], dtype=np.float32)
    gallery = Gallery.from_raw(raw, np.array([0, 0, 1, 1]), n_members=2)

    similarities = gallery.similarities(np.array([[10.0, 1.05]], dtype=np.float32))

    assert np.allclose(gallery.center, [10.0, 0.0], atol=1e-6)
    assert similarities[0, 0] > 0.9
    assert similarities[0, 1] < -0.9
