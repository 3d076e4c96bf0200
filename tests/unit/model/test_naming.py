import numpy as np

from model.assign import NOBODY
from model.naming import (
    name_faces_by_photo,
    name_photo_faces,
    stranger_trials,
    strangers_named_among_members,
    tune_context,
)
from model.thresholds import ContextCuts, Thresholds

ROSTER = ["jin", "suga", "rm"]
STRICT = Thresholds(
    {member: 0.5 for member in ROSTER}, {member: 0.5 for member in ROSTER}, context=None
)
LOOSE = ContextCuts(min_named=2, face=0.2, gallery=0.3)


def _with_context(context: ContextCuts | None) -> Thresholds:
    return Thresholds(STRICT.face, STRICT.gallery, context=context)


def test_faces_stand_on_their_own_cuts_without_context() -> None:
    probabilities = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0], [0.1, 0.0, 0.3]], np.float32)
    similarities = np.full_like(probabilities, 0.6)

    named = name_photo_faces(ROSTER, probabilities, similarities, STRICT)

    assert named.tolist() == [0, 1, NOBODY]


def test_a_weak_face_among_named_members_takes_a_member_still_free() -> None:
    # The third face leans to jin, already named; rm is free and passes the context cuts.
    probabilities = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0], [0.4, 0.0, 0.3]], np.float32)
    similarities = np.full_like(probabilities, 0.6)

    named = name_photo_faces(ROSTER, probabilities, similarities, _with_context(LOOSE))

    assert named.tolist() == [0, 1, 2]


def test_context_needs_enough_members_named_first() -> None:
    probabilities = np.array([[0.9, 0.1, 0.0], [0.1, 0.0, 0.3]], np.float32)
    similarities = np.full_like(probabilities, 0.6)

    named = name_photo_faces(ROSTER, probabilities, similarities, _with_context(LOOSE))

    assert named.tolist() == [0, NOBODY]


def test_context_still_refuses_a_face_under_its_gallery_cut() -> None:
    probabilities = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0], [0.1, 0.0, 0.3]], np.float32)
    similarities = np.array([[0.6, 0.6, 0.6], [0.6, 0.6, 0.6], [0.6, 0.6, 0.1]], np.float32)

    named = name_photo_faces(ROSTER, probabilities, similarities, _with_context(LOOSE))

    assert named.tolist() == [0, 1, NOBODY]


def test_faces_of_different_photos_never_share_context() -> None:
    photos = np.array(["a.jpg", "a.jpg", "b.jpg"], dtype=object)
    probabilities = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0], [0.1, 0.0, 0.3]], np.float32)
    similarities = np.full_like(probabilities, 0.6)

    named = name_faces_by_photo(photos, ROSTER, probabilities, similarities, _with_context(LOOSE))

    assert named.tolist() == [0, 1, NOBODY]


def test_each_stranger_is_placed_among_one_to_four_members_of_one_photo() -> None:
    photos = np.array(["a"] * 6 + ["b"] * 2 + ["s1", "s2", "s3"], dtype=object)
    truth = np.array([0, 1, 2, 0, 1, 2, 0, 1, NOBODY, NOBODY, NOBODY], dtype=np.int64)

    trials = stranger_trials(photos, truth, seed=3)

    assert [int(rows[-1]) for rows in trials] == [8, 9, 10]
    for rows in trials:
        members = rows[:-1]
        assert 1 <= members.size <= 4
        assert len(set(photos[members].tolist())) == 1
        assert (truth[members] != NOBODY).all()
    assert [rows.tolist() for rows in trials] == [
        rows.tolist() for rows in stranger_trials(photos, truth, seed=3)
    ]


def test_share_of_strangers_named_among_members_counts_the_last_face_only() -> None:
    # A stranger that leans to rm sits beside jin and suga: context cuts name it, strict ones not.
    probabilities = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0], [0.1, 0.0, 0.3]], np.float32)
    similarities = np.full_like(probabilities, 0.6)
    trials = [np.array([0, 1, 2])]

    strict_share = strangers_named_among_members(
        trials, ROSTER, probabilities, similarities, STRICT
    )
    loose_share = strangers_named_among_members(
        trials, ROSTER, probabilities, similarities, _with_context(LOOSE)
    )

    assert (strict_share, loose_share) == (0.0, 1.0)
    assert strangers_named_among_members([], ROSTER, probabilities, similarities, STRICT) is None


def _group_and_strangers(stranger_rm_probability: float) -> tuple[np.ndarray, ...]:
    # Four photos of jin, suga and a weak rm face (0.3), and twelve strangers leaning to rm.
    member_rows = [[0.9, 0.1, 0.0], [0.1, 0.8, 0.0], [0.0, 0.1, 0.3]] * 4
    stranger_rows = [[0.0, 0.0, stranger_rm_probability]] * 12
    probabilities = np.array(member_rows + stranger_rows, dtype=np.float32)
    similarities = np.full_like(probabilities, 0.6)
    photos = np.array(
        [f"group{index // 3}" for index in range(12)] + [f"stranger{i}" for i in range(12)],
        dtype=object,
    )
    truth = np.array([0, 1, 2] * 4 + [NOBODY] * 12, dtype=np.int64)
    return photos, probabilities, similarities, truth


def test_context_tuning_names_weak_members_when_strangers_score_low() -> None:
    photos, probabilities, similarities, truth = _group_and_strangers(0.01)

    context = tune_context(
        ROSTER, photos, probabilities, similarities, truth, STRICT, stranger_cost=2.0, seed=0
    )

    assert context is not None
    named = name_faces_by_photo(photos, ROSTER, probabilities, similarities, _with_context(context))
    assert named[:12].tolist() == truth[:12].tolist()
    assert (named[12:] == NOBODY).all()


def test_context_tuning_keeps_none_when_strangers_score_like_weak_members() -> None:
    # Strangers score 0.35 for rm, above the weak rm faces: no context cut names those without
    # naming the strangers beside two members.
    photos, probabilities, similarities, truth = _group_and_strangers(0.35)

    context = tune_context(
        ROSTER, photos, probabilities, similarities, truth, STRICT, stranger_cost=2.0, seed=0
    )

    assert context is None


def test_context_tuning_without_member_faces_keeps_none() -> None:
    photos = np.array(["s1", "s2"], dtype=object)
    probabilities = np.array([[0.1, 0.2, 0.0], [0.0, 0.1, 0.3]], np.float32)

    context = tune_context(
        ROSTER,
        photos,
        probabilities,
        np.full_like(probabilities, 0.6),
        np.array([NOBODY, NOBODY], dtype=np.int64),
        STRICT,
        stranger_cost=2.0,
        seed=0,
    )

    assert context is None
