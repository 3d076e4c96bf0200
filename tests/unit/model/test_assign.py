import numpy as np

from model.assign import NOBODY, assign_members, name_faces


def test_each_member_goes_to_at_most_one_face() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.7]], dtype=np.float32)
    eligible = probabilities >= 0.5

    assigned = assign_members(probabilities, eligible)

    # Face 1 would also take member 0, but the best total gives it member 1.
    assert assigned.tolist() == [0, 1]


def test_face_whose_only_member_is_taken_is_nobody() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2]], dtype=np.float32)
    eligible = probabilities >= 0.5

    assigned = assign_members(probabilities, eligible)

    assert assigned.tolist() == [0, NOBODY]


def test_no_eligible_pair_names_nobody() -> None:
    probabilities = np.array([[0.3, 0.2]], dtype=np.float32)

    assigned = assign_members(probabilities, probabilities >= 0.5)

    assert assigned.tolist() == [NOBODY]


def test_no_faces_gives_empty_assignment() -> None:
    probabilities = np.zeros((0, 7), dtype=np.float32)

    assigned = assign_members(probabilities, probabilities >= 0.5)

    assert assigned.shape == (0,)


def test_more_faces_than_members_leaves_the_weakest_unnamed() -> None:
    probabilities = np.array([[0.6], [0.95], [0.7]], dtype=np.float32)

    assigned = assign_members(probabilities, probabilities >= 0.5)

    assert assigned.tolist() == [NOBODY, 0, NOBODY]


def test_known_face_takes_its_next_best_member_when_the_first_is_taken() -> None:
    probabilities = np.array([[0.9, 0.3], [0.6, 0.4]], dtype=np.float32)

    named = name_faces(probabilities, np.array([True, True]))

    assert named.tolist() == [0, 1]


def test_unknown_face_stays_nobody_even_with_a_free_member() -> None:
    probabilities = np.array([[0.9, 0.3], [0.6, 0.4]], dtype=np.float32)

    named = name_faces(probabilities, np.array([True, False]))

    assert named.tolist() == [0, NOBODY]
